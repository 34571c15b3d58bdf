// What compilePolicies promises beyond rule matching, seen through evaluate() and the compiled
// set's published fields (the snapshot stores `policies`; logs and spans report the counts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
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
