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
