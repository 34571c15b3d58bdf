// What compilePolicies promises beyond rule matching, seen through evaluate() and the compiled
// set's published fields (the snapshot stores `policies`; logs and spans report the counts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileInSteps, compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { IndexDimension } from '../../src/policy/rule-index.ts';
import type { EvalContext, PolicyRule, Socks4Policy } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

function clusterPolicy(
  name: string,
  rules: PolicyRule[],
  spec: { priority?: number; tier?: 'Admin' | 'Baseline' } = {},
) {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'ClusterSocks4Policy',
    metadata: { name },
    spec: { ...spec, rules },
  } satisfies Socks4Policy;
}

/** "<reason> <rule id>" of one request. */
function outcome(policies: Socks4Policy[], ctx: Partial<EvalContext>): string {
  const d = evaluate(compilePolicies(policies), makeContext(ctx));
  return `${d.reason} ${d.rule?.id ?? '-'}`;
}

describe('compile: host globs are matched in canonical form, in both kinds of policy', () => {
  // The session hands evaluate() the canonical request name (IDNA → punycode, lower case, no
  // root dot), so a glob written in Unicode must be compiled to the same spelling.
  const hosts = ['*.Bücher.example', 'Foo.example.'];
  const kinds = [
    clusterPolicy('c', [{ name: 'r', action: 'Deny', to: { hosts } }]),
    makePolicy('n', [{ name: 'r', action: 'Deny', to: { hosts } }]),
  ];
  for (const p of kinds) {
    const id = p.kind === 'ClusterSocks4Policy' ? 'c/r' : 'default/n/r';
    it(`${p.kind}: a Unicode or root-dotted glob matches the canonical name`, () => {
      assert.equal(outcome([p], { host: 'www.xn--bcher-kva.example' }), `RuleDenied ${id}`);
      assert.equal(outcome([p], { host: 'foo.example' }), `RuleDenied ${id}`);
      assert.equal(outcome([p], { host: 'xn--bcher-kva.example' }), 'NoRuleMatched -');
    });
    it(`${p.kind}: the snapshot stores the globs as they are matched`, () => {
      const stored = compilePolicies([p]).policies[0]?.spec.rules[0]?.to?.hosts;
      assert.deepEqual(stored, ['*.xn--bcher-kva.example', 'foo.example']);
    });
  }
});

describe('compile: USERIDs are compared as written', () => {
  it('a pattern with capitals matches those capitals only (SOCKS4 USERIDs are case-sensitive)', () => {
    const set = compilePolicies([
      makePolicy('p', [{ name: 'r', action: 'Allow', from: { userids: ['Alice', 'SVC-*'] } }]),
    ]);
    const got = ['Alice', 'alice', 'SVC-build', 'svc-build'].map(
      (userId) => evaluate(set, makeContext({ userId })).action,
    );
    assert.deepEqual(got, ['allow', 'deny', 'allow', 'deny']);
  });
});

describe('compile: limits reach the allowing decision as written, and only those', () => {
  const limits = {
    connectionRate: { perSecond: 5, burst: 10, key: 'SourceIP' },
    concurrentSessions: { max: 3, key: 'UserID' },
    bandwidth: { bytesPerSecond: 1000, key: 'Session' },
  } as const;

  it('each kind of limit, alone or together', () => {
    for (const only of [limits, ...Object.entries(limits).map(([k, v]) => ({ [k]: v }))]) {
      const d = evaluate(
        compilePolicies([makePolicy('p', [{ name: 'r', action: 'Allow', limits: only }])]),
        makeContext(),
      );
      assert.deepEqual(d.limits, only, JSON.stringify(only));
    }
  });

  it('an empty limits block limits nothing: the decision carries null, as with no block', () => {
    const d = evaluate(compilePolicies([makePolicy('p', [{ name: 'r', action: 'Allow', limits: {} }])]), makeContext());
    assert.equal(d.limits, null);
  });

  it("one rule's decision is shared by every session it decides, so none can change it for the next", () => {
    const set = compilePolicies([makePolicy('p', [{ name: 'r', action: 'Allow', limits }])]);
    const d = evaluate(set, makeContext());
    assert.equal(evaluate(set, makeContext({ sourceIp: '10.0.0.2' })), d);
    for (const target of [d, d.limits, d.limits?.connectionRate, d.limits?.concurrentSessions, d.limits?.bandwidth]) {
      assert.throws(() => Object.assign(target ?? {}, { key: 'Rule' }), TypeError);
    }
  });
});

describe('compile: equal range sets are shared, different ones never confused', () => {
  // Equal port lists and CIDR blocks are compiled once and shared between rules (keyed by their
  // bounds as text); bounds whose digits read alike when run together must stay apart.
  const pairs: { first: string[]; second: string[]; onlyFirst: number; onlySecond: number }[] = [
    { first: ['11-12'], second: ['1-112'], onlyFirst: -1, onlySecond: 50 },
    { first: ['1-20', '234-300'], second: ['12-20', '34-300'], onlyFirst: 5, onlySecond: 100 },
    { first: ['1-23', '500-4567'], second: ['1-234', '500-567'], onlyFirst: 1000, onlySecond: 100 },
  ];
  for (const { first, second, onlyFirst, onlySecond } of pairs) {
    it(`ports ${first.join(',')} and ${second.join(',')}`, () => {
      const set = compilePolicies([
        makePolicy('p', [
          { name: 'first', action: 'Allow', to: { ports: first } },
          { name: 'second', action: 'Deny', to: { ports: second } },
          { name: 'same-as-first', action: 'Deny', to: { ports: [...first] } },
        ]),
      ]);
      const rule = (destPort: number) => evaluate(set, makeContext({ destPort })).rule?.name ?? null;
      if (onlyFirst > 0) assert.equal(rule(onlyFirst), 'first');
      assert.equal(rule(onlySecond), 'second');
      assert.equal(rule(12), 'first');
      assert.equal(rule(60000), null);
    });
  }
  it('source and destination blocks alike', () => {
    const set = compilePolicies([
      makePolicy('p', [
        { name: 'from', action: 'Deny', from: { cidrs: ['10.0.0.0/8'] } },
        { name: 'to', action: 'Deny', to: { cidrs: ['10.0.0.0/8'] } },
      ]),
    ]);
    assert.equal(evaluate(set, makeContext({ sourceIp: '10.1.1.1' })).rule?.name, 'from');
    assert.equal(evaluate(set, makeContext({ sourceIp: '11.1.1.1', destIp: '10.2.2.2' })).rule?.name, 'to');
    assert.equal(evaluate(set, makeContext({ sourceIp: '11.1.1.1' })).rule, null);
  });
});

describe('compile: what the compiled set publishes', () => {
  const report = (p: Socks4Policy): Socks4Policy => ({ ...p, spec: { ...p.spec, enforcement: 'Report' } });

  it('counts every policy and every rule written, Report ones included (the snapshot log and span report them)', () => {
    const set = compilePolicies([
      makePolicy('a', [
        { name: 'r1', action: 'Allow' },
        { name: 'r2', action: 'Deny' },
        { name: 'r3', action: 'Deny' },
      ]),
      report(
        makePolicy('b', [
          { name: 'r1', action: 'Deny' },
          { name: 'r2', action: 'Deny' },
        ]),
      ),
      clusterPolicy('c', [{ name: 'r1', action: 'Pass' }]),
    ]);
    assert.deepEqual([set.policyCount, set.ruleCount], [3, 6]);
    assert.deepEqual([compilePolicies([]).policyCount, compilePolicies([]).ruleCount], [0, 0]);
  });

  it('stores each policy with its defaults filled in, in evaluation order', () => {
    const set = compilePolicies([
      makePolicy('n', [{ name: 'r', action: 'Allow' }]),
      clusterPolicy('c', [{ name: 'r', action: 'Deny' }]),
      clusterPolicy('b', [{ name: 'r', action: 'Deny' }], { tier: 'Baseline', priority: 5 }),
    ]);
    assert.deepEqual(
      set.policies.map((p) => [
        p.kind,
        p.metadata.namespace ?? null,
        p.metadata.name,
        p.spec.priority,
        p.spec.tier ?? null,
      ]),
      [
        ['ClusterSocks4Policy', null, 'c', 1000, 'Admin'],
        ['Socks4Policy', 'default', 'n', 1000, null],
        ['ClusterSocks4Policy', null, 'b', 5, 'Baseline'],
      ],
    );
  });

  it('a Report policy decides nothing but is answered by the report view; without one there is none', () => {
    const policies = [
      report(makePolicy('trial', [{ name: 'no-ssh', action: 'Deny', to: { ports: ['22'] } }], { priority: 1 })),
      makePolicy('base', [{ name: 'all', action: 'Allow' }]),
    ];
    const set = compilePolicies(policies);
    assert.equal(evaluate(set, makeContext({ destPort: 22 })).rule?.id, 'default/base/all');
    assert.ok(set.report !== null);
    assert.equal(evaluate(set.report.all, makeContext({ destPort: 22 })).rule?.id, 'default/trial/no-ssh');
    assert.deepEqual([...set.report.policies], ['default/trial']);
    assert.equal(compilePolicies(policies.slice(1)).report, null);
  });
  it("the report view keeps the set's tenancy: a Report policy speaks for its own namespace only", () => {
    const trial = report(makePolicy('trial', [{ name: 'no-ssh', action: 'Deny' }], { namespace: 'team-b' }));
    const set = compilePolicies(
      [trial, makePolicy('base', [{ name: 'all', action: 'Allow' }], { namespace: 'team-a' })],
      {
        tenancy: 'Namespaced',
      },
    );
    const would = (namespace: string) => evaluate(set.report?.all ?? set, makeContext({ namespace })).rule?.id ?? null;
    assert.deepEqual([would('team-a'), would('team-b')], ['team-a/base/all', 'team-b/trial/no-ssh']);
  });
});

describe('compile: refusals of callers that did not validate', () => {
  it('an invalid policy, with all its issues (also when the caller says it did not validate)', () => {
    const bad = makePolicy('p', [
      { name: 'r', action: 'Allow' },
      { name: 'r', action: 'Deny' },
      { name: 'r', action: 'Deny' },
    ]);
    for (const options of [{}, { validated: false }]) {
      assert.throws(() => compilePolicies([bad], options), {
        message:
          'policy default/p is invalid: spec.rules[1].name: duplicate rule name "r" (also spec.rules[0]); ' +
          'spec.rules[2].name: duplicate rule name "r" (also spec.rules[0])',
      });
    }
  });

  it('a caller that validated says so and gets the same set, without validating again', () => {
    const policies = [makePolicy('p', [{ name: 'r', action: 'Allow', to: { ports: ['443'] } }])];
    const trusted = compilePolicies(policies, { validated: true });
    assert.deepEqual(trusted.rules, compilePolicies(policies).rules);
    assert.equal(evaluate(trusted, makeContext()).rule?.id, 'default/p/r');
  });

  it('two policies with one namespace/name', () => {
    const p = makePolicy('p', [{ name: 'r', action: 'Allow' }]);
    assert.throws(() => compilePolicies([p, makePolicy('p', [{ name: 's', action: 'Deny' }])]), {
      message: 'duplicate policy default/p',
    });
    // The same name in another namespace, or as a cluster policy, is another policy.
    const other = compilePolicies([p, makePolicy('p', [], { namespace: 'b' }), clusterPolicy('p', [])]);
    assert.equal(other.policyCount, 3);
  });
});

describe('compile: in steps, so a reload never holds the event loop for the whole set', () => {
  const big = (rules: number): Socks4Policy[] => [
    makePolicy(
      'big',
      Array.from({ length: rules }, (_, i) => ({ name: `r${i}`, action: 'Allow', to: { ports: [String(i + 1)] } })),
    ),
  ];
  function run(policies: Socks4Policy[], options?: { rulesPerStep?: number }) {
    const steps = compileInSteps(policies, options);
    for (let pauses = 0; ; pauses++) {
      const step = steps.next();
      if (step.done === true) return { set: step.value, pauses };
    }
  }

  it('pauses after every 100 rules by default, and every rulesPerStep when given', () => {
    // One pause per full step of rules, then one before each candidate index build (one per
    // dimension an index can use), each of which walks the whole set.
    const builds = Object.values(IndexDimension).filter((d) => d !== IndexDimension.None).length;
    for (const [rules, perStep] of [
      [1000, undefined],
      [250, 100],
      [250, 50],
      [100, 100],
    ] as const) {
      const { set, pauses } = run(big(rules), perStep === undefined ? {} : { rulesPerStep: perStep });
      assert.equal(pauses, Math.floor(rules / (perStep ?? 100)) + builds, `${rules} rules per ${perStep}`);
      assert.equal(set.ruleCount, rules);
      assert.equal(evaluate(set, makeContext({ destPort: 100 })).rule?.name, 'r99');
    }
  });

  it('compiles a set smaller than one step without pausing', () => {
    for (const rules of [10, 99]) assert.equal(run(big(rules)).pauses, 0, `${rules} rules`);
  });
});
