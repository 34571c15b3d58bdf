// evaluate() (indexed, precompiled) against a deliberately naive reference evaluator written
// straight from README's "Policy semantics", over random rule sets large enough to switch the
// index on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compilePolicies } from '../../src/policy/compile.ts';
import { decideBeforeResolve, evaluate } from '../../src/policy/evaluate.ts';
import { explainDecision } from '../../src/policy/explain.ts';
import type { EvalContext, PolicyRule, Socks4Policy } from '../../src/policy/types.ts';
import { makePolicy } from './fixtures.ts';

// ---- reference evaluator -------------------------------------------------------------------

function toInt(dotted: string): number | null {
  const s = dotted.toLowerCase().startsWith('::ffff:') && dotted.includes('.') ? dotted.slice(7) : dotted;
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d+$/.test(p))) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function cidrRange(cidr: string): [number, number] {
  const [addr = '', bits = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor((toInt(addr) ?? 0) / size) * size;
  return [start, start + size - 1];
}

const inCidr = (ip: number, cidr: string): boolean => {
  const [lo, hi] = cidrRange(cidr);
  return ip >= lo && ip <= hi;
};

function globRe(glob: string, flags: string): RegExp {
  const body = glob
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, `s${flags}`);
}

function portIn(port: number, spec: string): boolean {
  const [lo, hi = lo] = spec.split('-').map(Number);
  return port >= (lo ?? 0) && port <= (hi ?? 0);
}

// The guarded address classes, written out independently of src/policy/guard.ts; nested first.
const GUARDED = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '255.255.255.255/32',
  '240.0.0.0/4',
];

function referenceEvaluate(policies: Socks4Policy[], ctx: EvalContext): string {
  const key = (p: Socks4Policy) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
  const sorted = [...policies].sort(
    (a, b) => (a.spec.priority ?? 1000) - (b.spec.priority ?? 1000) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0),
  );
  const src = toInt(ctx.sourceIp);
  const dst = toInt(ctx.destIp);
  const host = ctx.host?.replace(/\.$/, '') ?? null;
  for (const p of sorted) {
    for (const r of p.spec.rules) {
      const cmd = ctx.command === 'bind' ? 'Bind' : 'Connect';
      if (r.commands && !r.commands.includes(cmd)) continue;
      if (r.from?.cidrs && (src === null || !r.from.cidrs.some((c) => inCidr(src, c)))) continue;
      if (r.from?.userids && !r.from.userids.some((g) => globRe(g, '').test(ctx.userId))) continue;
      if (r.to?.cidrs && (dst === null || !r.to.cidrs.some((c) => inCidr(dst, c)))) continue;
      if (r.to?.hosts && (host === null || !r.to.hosts.some((g) => globRe(g, 'i').test(host)))) continue;
      if (r.to?.ports && !r.to.ports.some((s) => portIn(ctx.destPort, s))) continue;
      const id = `${key(p)}/${r.name}`;
      if (r.action === 'Deny') return `deny RuleDenied ${id}`;
      // Self addresses are guarded inside opened classes (by their /32), except on loopback.
      const isSelf =
        dst !== null && !inCidr(dst, '127.0.0.0/8') && [...ctx.selfAddresses].some((s) => toInt(s) === dst);
      const block = dst === null || isSelf ? undefined : GUARDED.find((g) => inCidr(dst, g));
      const named = (c: string) => {
        if (dst === null || !inCidr(dst, c)) return false;
        if (block) return cidrRange(c)[0] >= cidrRange(block)[0] && cidrRange(c)[1] <= cidrRange(block)[1];
        return c.endsWith('/32');
      };
      const guarded = dst === null || ((block !== undefined || isSelf) && !(r.to?.cidrs ?? []).some(named));
      return guarded ? `deny GuardedDestination ${id}` : `allow RuleAllowed ${id}`;
    }
  }
  return 'deny NoRuleMatched -';
}

// ---- generators ----------------------------------------------------------------------------

const CIDRS = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.0/24',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '127.0.0.1/32',
  '0.0.0.0/0',
  '169.254.0.0/16',
  '0.0.0.0/8',
  '93.184.216.0/24',
  '10.0.0.5/32',
  '10.0.0.0/24',
  '100.64.0.0/10',
  '172.16.0.0/12',
  '240.0.0.0/4',
  '255.255.255.255/32',
  '224.0.0.0/3',
  '128.0.0.0/1',
];
const SMALL_CIDR = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 }))
  .map(([a, b]) => `10.${a}.${b}.0/24`);
const cidrList = fc.array(fc.oneof(fc.constantFrom(...CIDRS), SMALL_CIDR), { minLength: 1, maxLength: 3 });
const PORT_SPECS = ['22', '80', '443', '8000-8999', '1-1024'];
const portList = fc.array(fc.oneof(fc.constantFrom(...PORT_SPECS), fc.integer({ min: 1, max: 200 }).map(String)), {
  minLength: 1,
  maxLength: 3,
});
const userList = fc.array(fc.constantFrom('alice', 'svc-*', 'b?b', '*', ''), { minLength: 1, maxLength: 2 });
const hostList = fc.array(fc.constantFrom('*.example.com', 'example.com', 'db-?.int', 'WWW.*', '*'), {
  minLength: 1,
  maxLength: 2,
});

const ruleArb: fc.Arbitrary<RuleShape> = fc.record({
  action: fc.constantFrom('Allow', 'Deny'),
  commands: fc.option(fc.constantFrom(['Connect'], ['Bind'], ['Connect', 'Bind']), { nil: undefined, freq: 3 }),
  fromCidrs: fc.option(cidrList, { nil: undefined }),
  userids: fc.option(userList, { nil: undefined, freq: 2 }),
  toCidrs: fc.option(cidrList, { nil: undefined }),
  hosts: fc.option(hostList, { nil: undefined, freq: 2 }),
  ports: fc.option(portList, { nil: undefined, freq: 4 }),
});

interface RuleShape {
  action: string;
  commands: readonly string[] | undefined;
  fromCidrs: string[] | undefined;
  userids: string[] | undefined;
  toCidrs: string[] | undefined;
  hosts: string[] | undefined;
  ports: string[] | undefined;
}

function toRule(shape: RuleShape, i: number): PolicyRule {
  const from = { ...(shape.fromCidrs && { cidrs: shape.fromCidrs }), ...(shape.userids && { userids: shape.userids }) };
  const to = {
    ...(shape.toCidrs && { cidrs: shape.toCidrs }),
    ...(shape.hosts && { hosts: shape.hosts }),
    ...(shape.ports && { ports: shape.ports }),
  };
  return {
    name: `r${i}`,
    action: shape.action as 'Allow' | 'Deny',
    ...(shape.commands && { commands: [...shape.commands] as ('Connect' | 'Bind')[] }),
    ...(Object.keys(from).length > 0 && { from }),
    ...(Object.keys(to).length > 0 && { to }),
  };
}

function policiesArb(rule: fc.Arbitrary<RuleShape>, minRules: number): fc.Arbitrary<Socks4Policy[]> {
  return fc
    .array(
      fc.record({
        priority: fc.constantFrom(0, 100, 1000),
        namespace: fc.constantFrom('a', 'b'),
        rules: fc.array(rule, { minLength: minRules, maxLength: minRules + 80 }),
      }),
      { minLength: 1, maxLength: 3 },
    )
    .map((ps) =>
      ps.map((p, i) => makePolicy(`p${i}`, p.rules.map(toRule), { priority: p.priority, namespace: p.namespace })),
    );
}

/** Mostly single ports or small client networks: large sets of these switch the index on. */
const USER_NAME = fc.integer({ min: 0, max: 40 }).map((n) => `u${n}`);
const HOST_NAME = fc.integer({ min: 0, max: 40 }).map((n) => `h${n}.example.com`);
const indexableRuleArb = (focus: string): fc.Arbitrary<RuleShape> =>
  fc.record({
    action: fc.constantFrom('Allow', 'Deny'),
    commands: fc.option(fc.constantFrom(['Connect'], ['Bind']), { nil: undefined, freq: 2 }),
    fromCidrs: fc.option(fc.array(SMALL_CIDR, { minLength: 1, maxLength: 2 }), {
      nil: undefined,
      freq: focus === 'fromCidrs' ? 10 : 1,
    }),
    userids: fc.option(
      fc.array(
        fc.oneof({ arbitrary: USER_NAME, weight: 9 }, { arbitrary: fc.constantFrom('u1*', 'alice'), weight: 1 }),
        { minLength: 1, maxLength: 2 },
      ),
      { nil: undefined, freq: focus === 'userids' ? 10 : 1 },
    ),
    toCidrs: fc.option(cidrList, { nil: undefined, freq: 2 }),
    hosts: fc.option(
      fc.array(
        fc.oneof(
          { arbitrary: HOST_NAME, weight: 9 },
          { arbitrary: fc.constantFrom('*.example.com', 'H1.EXAMPLE.com'), weight: 1 },
        ),
        { minLength: 1, maxLength: 2 },
      ),
      { nil: undefined, freq: focus === 'hosts' ? 10 : 1 },
    ),
    ports: fc.option(fc.array(fc.integer({ min: 1, max: 200 }).map(String), { minLength: 1, maxLength: 2 }), {
      nil: undefined,
      freq: focus === 'ports' ? 10 : 1,
    }),
  });
const indexablePoliciesArb = fc
  .constantFrom('ports', 'fromCidrs', 'userids', 'hosts')
  .chain((focus) => policiesArb(indexableRuleArb(focus), 64));

const contextArb = fc.record({
  command: fc.constantFrom('connect' as const, 'bind' as const),
  sourceIp: fc.oneof(
    fc.constantFrom('10.0.0.1', '10.1.2.3', '192.168.1.1', '127.0.0.1', '::ffff:10.1.2.3', '8.8.8.8', '2001:db8::1'),
    fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 })).map(([a, b]) => `10.${a}.${b}.9`),
  ),
  userId: fc.oneof(fc.constantFrom('alice', 'svc-x', 'bob', 'bab', '', 'eve', 'u12'), USER_NAME),
  host: fc.oneof(
    fc.constantFrom(null, 'www.example.com', 'Example.COM.', 'db-1.int', 'evil.org', 'h1.example.com.'),
    HOST_NAME,
  ),
  destIp: fc.constantFrom(
    '10.0.0.5',
    '127.0.0.1',
    '169.254.169.254',
    '0.0.0.0',
    '93.184.216.34',
    '8.8.8.8',
    '10.1.2.3',
    '10.2.3.4',
    '100.64.0.1',
    '172.20.0.1',
    '192.168.1.1',
    '192.0.0.8',
    '198.19.0.1',
    '224.0.0.1',
    '240.0.0.1',
    '255.255.255.255',
  ),
  destPort: fc.oneof(fc.constantFrom(22, 80, 443, 8080, 8500, 9000, 65535), fc.integer({ min: 1, max: 200 })),
  selfAddresses: fc.constantFrom(new Set<string>(), new Set(['10.0.0.5'])),
});

const summary = (d: { action: string; reason: string; rule: { id: string } | null }) =>
  `${d.action} ${d.reason} ${d.rule?.id ?? '-'}`;

describe('evaluate matches the reference evaluator', () => {
  const check = (policies: Socks4Policy[], contexts: EvalContext[]): void => {
    const set = compilePolicies(policies);
    for (const ctx of contexts) {
      const expected = referenceEvaluate(policies, ctx);
      const decision = evaluate(set, ctx);
      assert.equal(summary(decision), expected);
      assert.deepEqual(explainDecision(set, ctx).decision, decision);
      // A decision made before resolving must hold for every address the name could have.
      const early = ctx.host === null ? null : decideBeforeResolve(set, ctx);
      if (early !== null) assert.equal(decision.action, 'deny');
    }
  };
  const contexts = fc.array(contextArb, { minLength: 1, maxLength: 20 });

  it('on random rule sets and requests', () => {
    fc.assert(fc.property(policiesArb(ruleArb, 0), contexts, check), { numRuns: 150 });
  });

  it('on large rule sets that use the index', () => {
    const used = new Set<string>();
    fc.assert(
      fc.property(indexablePoliciesArb, contexts, (policies, ctxs) => {
        used.add(compilePolicies(policies).index.dimension);
        check(policies, ctxs);
      }),
      { numRuns: 80 },
    );
    // The property only tests the index if the generated sets actually use it.
    for (const dimension of ['port', 'source', 'userid', 'host'])
      assert.ok(used.has(dimension), `no generated rule set used the ${dimension} index`);
  });
});

describe('rule index', () => {
  const many = (n: number, rule: (i: number) => Omit<PolicyRule, 'name'>): Socks4Policy[] => [
    makePolicy(
      'big',
      Array.from({ length: n }, (_, i) => ({ name: `r${i}`, ...rule(i) }) as PolicyRule),
    ),
  ];
  const ctx = (o: Partial<EvalContext>): EvalContext => ({
    command: 'connect',
    sourceIp: '10.0.0.1',
    userId: '',
    host: null,
    destIp: '8.8.8.8',
    destPort: 443,
    selfAddresses: new Set(),
    ...o,
  });

  it('indexes by port when rules name distinct ports', () => {
    const set = compilePolicies(many(1000, (i) => ({ action: 'Allow', to: { ports: [String(i + 1)] } })));
    assert.equal(set.index.dimension, 'port');
    assert.equal(evaluate(set, ctx({ destPort: 500 })).rule?.name, 'r499');
    assert.equal(evaluate(set, ctx({ destPort: 1001 })).reason, 'NoRuleMatched');
  });

  it('indexes by source when rules name distinct client networks', () => {
    const set = compilePolicies(
      many(1000, (i) => ({ action: 'Allow', from: { cidrs: [`10.${i >> 8}.${i & 255}.0/24`] } })),
    );
    assert.equal(set.index.dimension, 'source');
    assert.equal(evaluate(set, ctx({ sourceIp: '10.3.231.7' })).rule?.name, 'r999');
    assert.equal(evaluate(set, ctx({ sourceIp: '2001:db8::1' })).reason, 'NoRuleMatched');
  });

  it('indexes by destination when rules name distinct destinations', () => {
    const set = compilePolicies(
      many(1000, (i) => ({ action: 'Deny', to: { cidrs: [`11.${i >> 8}.${i & 255}.1/32`] } })),
    );
    assert.equal(set.index.dimension, 'destination');
    assert.equal(evaluate(set, ctx({ destIp: '11.0.7.1' })).rule?.name, 'r7');
  });

  it('indexes by exact USERID, case-sensitively', () => {
    const set = compilePolicies(many(1000, (i) => ({ action: 'Allow', from: { userids: [`user${i}`] } })));
    assert.equal(set.index.dimension, 'userid');
    assert.equal(evaluate(set, ctx({ userId: 'user777' })).rule?.name, 'r777');
    assert.equal(evaluate(set, ctx({ userId: 'USER777' })).reason, 'NoRuleMatched');
  });

  it('indexes by exact host name, case-insensitively', () => {
    const set = compilePolicies(many(1000, (i) => ({ action: 'Allow', to: { hosts: [`Host${i}.example.com`] } })));
    assert.equal(set.index.dimension, 'host');
    assert.equal(evaluate(set, ctx({ host: 'HOST42.example.com.' })).rule?.name, 'r42');
    assert.equal(evaluate(set, ctx({ host: null })).reason, 'NoRuleMatched');
  });

  it('keeps rules that constrain nothing in every candidate list, in order', () => {
    const policies = many(1000, (i) =>
      i === 500 ? { action: 'Deny' } : { action: 'Allow', to: { ports: [String(i + 1)] } },
    );
    const set = compilePolicies(policies);
    assert.equal(set.index.dimension, 'port');
    assert.equal(evaluate(set, ctx({ destPort: 10 })).rule?.name, 'r9');
    assert.equal(evaluate(set, ctx({ destPort: 900 })).rule?.name, 'r500');
  });
});
