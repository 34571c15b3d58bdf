// The trace lines of `policy explain`: for every rule it skips, the field that did not match with
// the request's value and the rule's list; for a matching Allow, what the SSRF guard said and the
// /32 or block to add. Operators read these to fix a policy, so the text is asserted whole.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import type { CompileOptions } from '../../src/policy/compile.ts';
import { explainDecision } from '../../src/policy/explain.ts';
import { FleetEndpointSet } from '../../src/policy/fleet-endpoints.ts';
import { GuardedRange } from '../../src/policy/guard.ts';
import { parseIpv4 } from '../../src/policy/ip.ts';
import type { EvalContext, PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

function explain(rules: PolicyRule[], ctx: Partial<EvalContext> = {}, options: CompileOptions = {}): string[] {
  const set = compilePolicies([makePolicy('office', rules, { namespace: 'proxies' })], options);
  return explainDecision(set, makeContext(ctx)).lines;
}

describe('policy explain: why each rule was skipped', () => {
  it('names the field, the request value and the rule list for each kind of mismatch', () => {
    const rules: PolicyRule[] = [
      { name: 'bind-only', action: 'Deny', commands: ['Bind'] },
      { name: 'ssh', action: 'Deny', to: { ports: ['22', '2200-2299'] } },
      { name: 'lab', action: 'Deny', from: { cidrs: ['192.168.0.0/16', '172.16.0.0/12'] } },
      { name: 'intranet', action: 'Deny', to: { cidrs: ['10.0.0.0/8'] } },
      { name: 'by-name', action: 'Deny', to: { hosts: ['*.example.com', 'intra'] } },
      { name: 'svc', action: 'Deny', from: { userids: ['svc-*', 'bob'] } },
    ];
    assert.deepEqual(explain(rules), [
      'skip  proxies/office rule bind-only (Deny): command connect is not in [Bind]',
      'skip  proxies/office rule ssh (Deny): port 443 is not in [22, 2200-2299]',
      'skip  proxies/office rule lab (Deny): source 10.0.0.1 is not in [192.168.0.0/16, 172.16.0.0/12]',
      'skip  proxies/office rule intranet (Deny): destination 93.184.216.34 is not in [10.0.0.0/8]',
      'skip  proxies/office rule by-name (Deny): the request carries no host name (plain SOCKS4), and the rule matches only [*.example.com, intra]',
      'skip  proxies/office rule svc (Deny): USERID "alice" matches none of [svc-*, bob]',
      'no rule matched',
    ]);
  });

  it('quotes the host name a SOCKS4a request carries', () => {
    const rules: PolicyRule[] = [{ name: 'by-name', action: 'Allow', to: { hosts: ['*.example.com'] } }];
    assert.deepEqual(explain(rules, { host: 'www.example.org' }), [
      'skip  proxies/office rule by-name (Allow): host "www.example.org" matches none of [*.example.com]',
      'no rule matched',
    ]);
  });

  it('says when a source or destination is not an IPv4 address', () => {
    const rules: PolicyRule[] = [
      { name: 'lab', action: 'Allow', from: { cidrs: ['10.0.0.0/8'] } },
      { name: 'out', action: 'Allow', to: { cidrs: ['0.0.0.0/0'] } },
    ];
    assert.deepEqual(explain(rules, { sourceIp: '2001:db8::1', destIp: 'not-an-ip' }), [
      'skip  proxies/office rule lab (Allow): source "2001:db8::1" (not an IPv4 address) is not in [10.0.0.0/8]',
      'skip  proxies/office rule out (Allow): destination "not-an-ip" (not an IPv4 address) is not in [0.0.0.0/0]',
      'no rule matched',
    ]);
  });

  it('tells an empty set from one where no rule matched', () => {
    const set = compilePolicies([]);
    assert.deepEqual(explainDecision(set, makeContext()).lines, ['no rules are loaded']);
  });

  it('a namespaced policy skips a pod of a namespace no policy governs, naming it', () => {
    const lines = explain([{ name: 'all', action: 'Deny' }], { namespace: 'elsewhere' }, { tenancy: 'Namespaced' });
    assert.deepEqual(lines, [
      'skip  proxies/office rule all (Deny): the policy governs pods of its own namespace, and the client is in namespace "elsewhere"',
      'no rule matched',
    ]);
  });

  it('a namespaced policy skips a client that is no pod', () => {
    // null (a client the cluster does not know) and absent (outside a cluster) read alike.
    for (const namespace of [null, undefined]) {
      const lines = explain([{ name: 'all', action: 'Deny' }], { namespace }, { tenancy: 'Namespaced' });
      assert.deepEqual(lines, [
        'skip  proxies/office rule all (Deny): the policy governs pods of its own namespace, and the client is no pod',
        'no rule matched',
      ]);
    }
  });
});

describe('policy explain: the guard on a matching Allow', () => {
  it('a private destination: refused, with the block to add', () => {
    assert.deepEqual(explain([{ name: 'any', action: 'Allow' }], { destIp: '10.1.2.3' }), [
      'match proxies/office rule any (Allow)',
      "      guard: 10.1.2.3 is private (10.0.0.0/8); refused because the rule's to.cidrs [] do not name it (add a block inside 10.0.0.0/8)",
    ]);
  });

  it('a private destination the rule names: opened', () => {
    const rules: PolicyRule[] = [{ name: 'intranet', action: 'Allow', to: { cidrs: ['10.1.0.0/16'] } }];
    assert.deepEqual(explain(rules, { destIp: '10.1.2.3' }), [
      'match proxies/office rule intranet (Allow)',
      '      guard: 10.1.2.3 is private (10.0.0.0/8); opened because the rule names it in to.cidrs',
    ]);
  });

  it("the fleet's Redis and Kubernetes API: named, with the /32 to add", () => {
    const fleet = new FleetEndpointSet();
    fleet.replace('redis', [
      { kind: GuardedRange.Redis, ip: parseIpv4('203.0.113.7'), port: 6379, source: 'redis://redis:6379' },
    ]);
    fleet.replace('kubernetes-api', [
      { kind: GuardedRange.KubernetesApi, ip: parseIpv4('203.0.113.8'), port: null, source: 'KUBERNETES_SERVICE_HOST' },
    ]);
    const rules: PolicyRule[] = [{ name: 'any', action: 'Allow' }];
    assert.deepEqual(explain(rules, { destIp: '203.0.113.7', destPort: 6379, fleet }), [
      'match proxies/office rule any (Allow)',
      "      guard: 203.0.113.7 is redis: the fleet's Redis (port 6379, from redis://redis:6379); refused because the rule's to.cidrs [] do not name it (add 203.0.113.7/32)",
    ]);
    assert.deepEqual(explain(rules, { destIp: '203.0.113.8', destPort: 443, fleet }), [
      'match proxies/office rule any (Allow)',
      "      guard: 203.0.113.8 is kubernetes-api: the Kubernetes API (every port, from KUBERNETES_SERVICE_HOST); refused because the rule's to.cidrs [] do not name it (add 203.0.113.8/32)",
    ]);
  });

  it('a destination that is not IPv4 cannot be checked', () => {
    assert.deepEqual(explain([{ name: 'any', action: 'Allow' }], { destIp: 'not-an-ip' }), [
      'match proxies/office rule any (Allow)',
      '      guard: destination "not-an-ip" (not an IPv4 address) cannot be checked, refused',
    ]);
  });

  it('0.0.0.0 is checked like any address: this-network', () => {
    assert.deepEqual(explain([{ name: 'any', action: 'Allow' }], { destIp: '0.0.0.0' }), [
      'match proxies/office rule any (Allow)',
      "      guard: 0.0.0.0 is this-network (0.0.0.0/8); refused because the rule's to.cidrs [] do not name it (add a block inside 0.0.0.0/8)",
    ]);
  });

  it('a Deny rule gets no guard line', () => {
    assert.deepEqual(explain([{ name: 'none', action: 'Deny' }], { destIp: '10.1.2.3' }), [
      'match proxies/office rule none (Deny)',
    ]);
  });

  it('a public destination gets no guard line', () => {
    assert.deepEqual(explain([{ name: 'any', action: 'Allow', to: { cidrs: ['0.0.0.0/0'] } }]), [
      'match proxies/office rule any (Allow)',
    ]);
  });
});
