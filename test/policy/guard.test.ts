// The SSRF guard as a table: every address class at its edges, what opens it and what does not,
// and the fleet's own endpoints (self, Redis, Kubernetes API, --guard-endpoint) inside opened
// classes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { explainDecision } from '../../src/policy/explain.ts';
import { FleetEndpointSet } from '../../src/policy/fleet-endpoints.ts';
import { ADDRESS_CLASSES, classifyAddress, GuardedRange } from '../../src/policy/guard.ts';
import { parseIpv4 } from '../../src/policy/ip.ts';
import type { EvalContext, PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

function decide(cidrs: string[], ctx: Partial<EvalContext>): string {
  const rules: PolicyRule[] = [{ name: 'r', action: 'Allow', to: { cidrs } }];
  const d = evaluate(compilePolicies([makePolicy('p', rules)]), makeContext(ctx));
  return d.action === 'allow' ? 'allow' : d.reason === 'GuardedDestination' ? `guard ${d.guard}` : d.reason;
}

// [address, class or null for public, a block that opens it]
const EDGES: [string, string | null, string | null][] = [
  ['0.0.0.0', 'this-network', '0.0.0.0/8'],
  ['0.255.255.255', 'this-network', '0.0.0.0/8'],
  ['1.0.0.0', null, null],
  ['9.255.255.255', null, null],
  ['10.0.0.0', 'private', '10.0.0.0/8'],
  ['10.255.255.255', 'private', '10.0.0.0/8'],
  ['11.0.0.0', null, null],
  ['100.63.255.255', null, null],
  ['100.64.0.0', 'cgnat', '100.64.0.0/10'],
  ['100.127.255.255', 'cgnat', '100.64.0.0/10'],
  ['100.128.0.0', null, null],
  ['126.255.255.255', null, null],
  ['127.0.0.0', 'loopback', '127.0.0.0/8'],
  ['127.255.255.255', 'loopback', '127.0.0.0/8'],
  ['128.0.0.0', null, null],
  ['169.253.255.255', null, null],
  ['169.254.0.0', 'link-local', '169.254.0.0/16'],
  ['169.254.169.254', 'link-local', '169.254.169.254/32'],
  ['169.254.255.255', 'link-local', '169.254.0.0/16'],
  ['169.255.0.0', null, null],
  ['172.15.255.255', null, null],
  ['172.16.0.0', 'private', '172.16.0.0/12'],
  ['172.31.255.255', 'private', '172.16.0.0/12'],
  ['172.32.0.0', null, null],
  ['191.255.255.255', null, null],
  ['192.0.0.0', 'ietf-protocol', '192.0.0.0/24'],
  ['192.0.0.255', 'ietf-protocol', '192.0.0.0/24'],
  ['192.0.1.0', null, null],
  ['192.167.255.255', null, null],
  ['192.168.0.0', 'private', '192.168.0.0/16'],
  ['192.168.255.255', 'private', '192.168.0.0/16'],
  ['192.169.0.0', null, null],
  ['198.17.255.255', null, null],
  ['198.18.0.0', 'benchmarking', '198.18.0.0/15'],
  ['198.19.255.255', 'benchmarking', '198.18.0.0/15'],
  ['198.20.0.0', null, null],
  ['223.255.255.255', null, null],
  ['224.0.0.0', 'multicast', '224.0.0.0/4'],
  ['239.255.255.255', 'multicast', '224.0.0.0/4'],
  ['240.0.0.0', 'reserved', '240.0.0.0/4'],
  ['255.255.255.254', 'reserved', '240.0.0.0/4'],
  ['255.255.255.255', 'broadcast', '255.255.255.255/32'],
];

describe('SSRF guard: address classes', () => {
  it('classifies every edge of every class', () => {
    for (const [ip, cls] of EDGES) assert.equal(classifyAddress(parseIpv4(ip))?.range ?? null, cls, ip);
  });

  it('refuses every class under 0.0.0.0/0 and names the class; public addresses pass', () => {
    for (const [ip, cls] of EDGES)
      assert.equal(decide(['0.0.0.0/0'], { destIp: ip }), cls === null ? 'allow' : `guard ${cls}`, ip);
  });

  it('opens a class only to a rule naming a block inside it', () => {
    for (const [ip, cls, opener] of EDGES) {
      if (cls === null || opener === null) continue;
      assert.equal(decide([opener], { destIp: ip }), 'allow', `${ip} by ${opener}`);
      // A block that contains the address but reaches outside the class opens nothing.
      assert.equal(
        decide(['0.0.0.0/1', '128.0.0.0/1'], { destIp: ip }),
        `guard ${cls}`,
        `${ip} by a half of the internet`,
      );
    }
    assert.equal(decide(['8.0.0.0/6'], { destIp: '10.1.2.3' }), 'guard private');
    assert.equal(
      decide(['172.16.0.0/12', '0.0.0.0/0'], { destIp: '10.1.2.3' }),
      'guard private',
      'another private block does not open 10/8',
    );
    assert.equal(
      decide(['240.0.0.0/4'], { destIp: '255.255.255.255' }),
      'guard broadcast',
      'reserved does not open broadcast',
    );
    assert.equal(decide(['10.1.0.0/16'], { destIp: '10.1.2.3' }), 'allow');
  });

  it('keeps the nested block first and the rest disjoint', () => {
    const broadcast = ADDRESS_CLASSES.findIndex((c) => c.range === GuardedRange.Broadcast);
    const reserved = ADDRESS_CLASSES.findIndex((c) => c.range === GuardedRange.Reserved);
    assert.ok(broadcast < reserved);
    const others = ADDRESS_CLASSES.filter((c) => c.range !== GuardedRange.Broadcast);
    for (const a of others)
      for (const b of others) {
        if (a !== b)
          assert.ok(a.cidr.end < b.cidr.start || b.cidr.end < a.cidr.start, `${a.cidr.text} overlaps ${b.cidr.text}`);
      }
  });
});

describe('SSRF guard: the fleet', () => {
  const fleet = new FleetEndpointSet();
  fleet.replace('redis', [
    { kind: 'redis', ip: parseIpv4('10.0.0.9'), port: 6379, source: 'redis://redis:6379' },
    { kind: 'redis', ip: parseIpv4('127.0.0.1'), port: 6380, source: 'redis://127.0.0.1:6380' },
  ]);
  fleet.replace('kubernetes-api', [
    { kind: 'kubernetes-api', ip: parseIpv4('10.96.0.1'), port: 443, source: 'KUBERNETES_SERVICE_HOST' },
  ]);
  fleet.replace('flag', [
    { kind: 'guard-endpoint', ip: parseIpv4('192.168.7.7'), port: null, source: '--guard-endpoint 192.168.7.7' },
  ]);
  const selfAddresses = new Set(['10.0.0.5', '127.0.0.1']);
  const at = (destIp: string, destPort: number): Partial<EvalContext> => ({ destIp, destPort, fleet, selfAddresses });

  const TABLE: [string, number, string[], string][] = [
    // Under "the internet" each endpoint reports itself, not its class.
    ['10.0.0.9', 6379, ['0.0.0.0/0'], 'guard redis'],
    ['10.96.0.1', 443, ['0.0.0.0/0'], 'guard kubernetes-api'],
    ['192.168.7.7', 22, ['0.0.0.0/0'], 'guard guard-endpoint'],
    ['10.0.0.5', 80, ['0.0.0.0/0'], 'guard self'],
    // Naming the class opens the class, not the endpoints inside it.
    ['10.0.0.9', 6379, ['10.0.0.0/8'], 'guard redis'],
    ['10.0.0.9', 6379, ['10.0.0.8/31'], 'guard redis'],
    ['10.0.0.9', 80, ['10.0.0.0/8'], 'allow'], // Redis is guarded on its port
    ['10.96.0.1', 443, ['10.0.0.0/8'], 'guard kubernetes-api'],
    ['192.168.7.7', 8080, ['192.168.0.0/16'], 'guard guard-endpoint'], // given without a port: every port
    ['10.0.0.5', 9090, ['10.0.0.0/8'], 'guard self'],
    ['10.0.0.7', 80, ['10.0.0.0/8'], 'allow'],
    // Loopback: self is governed by the loopback class; a Redis there is still guarded.
    ['127.0.0.1', 8080, ['127.0.0.0/8'], 'allow'],
    ['127.0.0.1', 6380, ['127.0.0.0/8'], 'guard redis'],
    // Each opens to exactly its /32.
    ['10.0.0.9', 6379, ['10.0.0.9/32'], 'allow'],
    ['10.96.0.1', 443, ['10.96.0.1/32'], 'allow'],
    ['192.168.7.7', 22, ['192.168.7.7/32'], 'allow'],
    ['10.0.0.5', 80, ['10.0.0.5/32'], 'allow'],
    ['127.0.0.1', 6380, ['127.0.0.1/32'], 'allow'],
  ];

  it('keeps fleet endpoints guarded inside opened classes, opened only by their /32', () => {
    for (const [ip, port, cidrs, want] of TABLE)
      assert.equal(decide(cidrs, at(ip, port)), want, `${ip}:${port} with ${cidrs.join(',')}`);
  });

  it('follows a group when discovery replaces it', () => {
    const moving = new FleetEndpointSet();
    moving.replace('redis', [{ kind: 'redis', ip: parseIpv4('10.0.0.9'), port: 6379, source: 'sentinel master' }]);
    assert.equal(decide(['10.0.0.0/8'], { destIp: '10.0.0.9', destPort: 6379, fleet: moving }), 'guard redis');
    assert.equal(
      moving.replace('redis', [{ kind: 'redis', ip: parseIpv4('10.0.0.10'), port: 6379, source: 'sentinel master' }]),
      true,
    );
    assert.equal(decide(['10.0.0.0/8'], { destIp: '10.0.0.9', destPort: 6379, fleet: moving }), 'allow');
    assert.equal(decide(['10.0.0.0/8'], { destIp: '10.0.0.10', destPort: 6379, fleet: moving }), 'guard redis');
  });

  it('says in policy explain which guard refused and how to open it', () => {
    const explain = (cidrs: string[], ctx: Partial<EvalContext>): string => {
      const set = compilePolicies([makePolicy('p', [{ name: 'r', action: 'Allow', to: { cidrs } }])]);
      return explainDecision(set, makeContext(ctx)).lines.join('\n');
    };
    assert.match(
      explain(['10.0.0.0/8'], at('10.0.0.9', 6379)),
      /10\.0\.0\.9 is redis: the fleet's Redis \(port 6379, from redis:\/\/redis:6379\); refused.*add 10\.0\.0\.9\/32/,
    );
    assert.match(
      explain(['0.0.0.0/0'], { destIp: '100.100.1.1' }),
      /100\.100\.1\.1 is cgnat \(100\.64\.0\.0\/10\); refused.*add a block inside 100\.64\.0\.0\/10/,
    );
    assert.match(explain(['0.0.0.0/0'], at('10.0.0.5', 80)), /proxy's own addresses; refused.*add 10\.0\.0\.5\/32/);
    assert.match(
      explain(['10.0.0.0/8'], at('10.0.0.7', 80)),
      /10\.0\.0\.7 is private \(10\.0\.0\.0\/8\); opened because the rule names it/,
    );
  });
});
