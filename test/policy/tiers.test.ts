// Tenancy tiers (README "Tenancy: who governs whom"): cluster → the client's namespace → baseline → default deny,
// with Pass handing a request from the cluster tier to the namespace tier.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { decideBeforeResolve, evaluate } from '../../src/policy/evaluate.ts';
import { explainDecision } from '../../src/policy/explain.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import type { EvalContext, PolicyRule, Socks4Policy, Tenancy } from '../../src/policy/types.ts';
import { formatIssue, validatePolicy } from '../../src/policy/validate.ts';
import { makeContext, makePolicy } from './fixtures.ts';

function clusterPolicy(
  name: string,
  rules: PolicyRule[],
  options: { priority?: number; tier?: 'Admin' | 'Baseline' } = {},
): Socks4Policy {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'ClusterSocks4Policy',
    metadata: { name },
    spec: {
      ...(options.priority === undefined ? {} : { priority: options.priority }),
      ...(options.tier === undefined ? {} : { tier: options.tier }),
      rules,
    },
  };
}

const allow = (name: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({ name, action: 'Allow', ...extra });
const deny = (name: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({ name, action: 'Deny', ...extra });
const pass = (name: string, extra: Partial<PolicyRule> = {}): PolicyRule => ({ name, action: 'Pass', ...extra });

/** "allow|deny <tier> <rule id>" for readable tables. */
function outcome(policies: Socks4Policy[], tenancy: Tenancy, ctx: Partial<EvalContext>): string {
  const d = evaluate(compilePolicies(policies, { tenancy }), makeContext(ctx));
  return `${d.action} ${d.tier} ${d.rule?.id ?? '-'}`;
}

describe('tiers: namespace numbers are never mistaken for the Shared or no-namespace markers', () => {
  // Five namespaces, so the compiled namespace numbers run past 0..4: each client gets its own
  // namespace's rule only, and a client in no namespace gets none of them.
  const names = ['ns-a', 'ns-b', 'ns-c', 'ns-d', 'ns-e'];
  const policies = names.map((ns, i) =>
    makePolicy('web', [allow('web', { to: { ports: [String(1000 + i)] } })], { namespace: ns }),
  );
  for (const client of [...names, null]) {
    it(`Namespaced: a client in ${client ?? 'no namespace'} is allowed on its own port only`, () => {
      const got = names.map((_, i) => outcome(policies, 'Namespaced', { namespace: client, destPort: 1000 + i }));
      const want = names.map((ns) => (ns === client ? `allow Namespace ${ns}/web/web` : 'deny Default -'));
      assert.deepEqual(got, want);
    });
  }
});

describe('tiers: a namespace governs its own pods', () => {
  // The issue's reproduction: team-b's priority-0 Deny-all must not reach team-a.
  const policies = [
    makePolicy('deny-all', [deny('all')], { namespace: 'team-b', priority: 0 }),
    makePolicy('web', [allow('web', { to: { ports: ['443'] } })], { namespace: 'team-a' }),
  ];
  const cases: { client: string | null; tenancy: Tenancy; expected: string }[] = [
    { client: 'team-a', tenancy: 'Namespaced', expected: 'allow Namespace team-a/web/web' },
    { client: 'team-b', tenancy: 'Namespaced', expected: 'deny Namespace team-b/deny-all/all' },
    { client: 'team-c', tenancy: 'Namespaced', expected: 'deny Default -' },
    { client: null, tenancy: 'Namespaced', expected: 'deny Default -' },
    // Outside a cluster (a policy file, policy push) every policy applies to every client.
    { client: 'team-a', tenancy: 'Shared', expected: 'deny Namespace team-b/deny-all/all' },
    { client: null, tenancy: 'Shared', expected: 'deny Namespace team-b/deny-all/all' },
  ];
  for (const c of cases) {
    it(`${c.tenancy}: a client in ${c.client ?? 'no namespace'} → ${c.expected}`, () => {
      assert.equal(outcome(policies, c.tenancy, { namespace: c.client }), c.expected);
    });
  }

  it('an Allow in one namespace opens nothing for another', () => {
    const open = [makePolicy('open', [allow('all')], { namespace: 'team-b', priority: 0 })];
    assert.equal(outcome(open, 'Namespaced', { namespace: 'team-a' }), 'deny Default -');
    assert.equal(outcome(open, 'Namespaced', { namespace: null }), 'deny Default -');
    assert.equal(outcome(open, 'Namespaced', { namespace: 'team-b' }), 'allow Namespace team-b/open/all');
  });
});

describe('tiers: the cluster tier decides first', () => {
  const namespaceAllow = makePolicy('open', [allow('all')], { namespace: 'team-a', priority: 0 });
  for (const tenancy of ['Namespaced', 'Shared'] as const) {
    it(`${tenancy}: a cluster Deny beats a namespace Allow of lower priority number`, () => {
      const policies = [
        namespaceAllow,
        clusterPolicy('no-smtp', [deny('smtp', { to: { ports: ['25'] } })], { priority: 5000 }),
      ];
      assert.equal(outcome(policies, tenancy, { namespace: 'team-a', destPort: 25 }), 'deny Cluster no-smtp/smtp');
      assert.equal(
        outcome(policies, tenancy, { namespace: 'team-a', destPort: 443 }),
        'allow Namespace team-a/open/all',
      );
    });

    it(`${tenancy}: a cluster Allow decides for a client no namespace policy would allow`, () => {
      const policies = [
        makePolicy('closed', [deny('all')], { namespace: 'team-a', priority: 0 }),
        clusterPolicy('dns', [allow('dns', { to: { ports: ['53'] } })]),
      ];
      assert.equal(outcome(policies, tenancy, { namespace: 'team-a', destPort: 53 }), 'allow Cluster dns/dns');
    });
  }

  it('orders cluster policies by priority, then name', () => {
    const policies = [
      clusterPolicy('b-allow', [allow('all')], { priority: 10 }),
      clusterPolicy('a-deny', [deny('all')], { priority: 10 }),
      clusterPolicy('late', [allow('x')], { priority: 20 }),
    ];
    const set = compilePolicies(policies, { tenancy: 'Namespaced' });
    assert.deepEqual(
      set.rules.map((r) => r.ref.id),
      ['a-deny/all', 'b-allow/all', 'late/x'],
    );
    assert.equal(outcome(policies, 'Namespaced', {}), 'deny Cluster a-deny/all');
  });
});

describe('tiers: Pass and the baseline', () => {
  const policies = [
    clusterPolicy('guard', [pass('team-a-web', { to: { ports: ['443'] } }), deny('everything-else')], { priority: 1 }),
    makePolicy('web', [allow('web', { to: { ports: ['443'] } })], { namespace: 'team-a' }),
    clusterPolicy('fallback', [allow('https', { to: { ports: ['443'] } })], { tier: 'Baseline' }),
  ];
  const cases: { name: string; ctx: Partial<EvalContext>; expected: string }[] = [
    {
      name: 'Pass skips the cluster Deny-all; the namespace allows',
      ctx: { namespace: 'team-a', destPort: 443 },
      expected: 'allow Namespace team-a/web/web',
    },
    {
      name: 'Pass with no namespace match falls to the baseline',
      ctx: { namespace: 'team-z', destPort: 443 },
      expected: 'allow Baseline fallback/https',
    },
    {
      name: 'a client that is no pod reaches the baseline too',
      ctx: { namespace: null, destPort: 443 },
      expected: 'allow Baseline fallback/https',
    },
    {
      name: 'no Pass: the rest of the cluster tier decides',
      ctx: { namespace: 'team-a', destPort: 80 },
      expected: 'deny Cluster guard/everything-else',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(outcome(policies, 'Namespaced', c.ctx), c.expected));
  }

  it('a namespace Deny beats the baseline Allow; nothing matching anywhere is the default deny', () => {
    const withDeny = [...policies, makePolicy('closed', [deny('all')], { namespace: 'team-b' })];
    assert.equal(
      outcome(withDeny, 'Namespaced', { namespace: 'team-b', destPort: 443 }),
      'deny Namespace team-b/closed/all',
    );
    const onlyPass = [clusterPolicy('p', [pass('all')])];
    assert.equal(outcome(onlyPass, 'Namespaced', { namespace: 'team-a' }), 'deny Default -');
  });

  it('the baseline comes after the namespaces whatever the priorities', () => {
    const set = compilePolicies([
      clusterPolicy('base', [deny('all')], { tier: 'Baseline', priority: 0 }),
      makePolicy('ns', [allow('all')], { namespace: 'team-a', priority: 999_999 }),
      clusterPolicy('admin', [pass('all')], { priority: 999_999 }),
    ]);
    assert.deepEqual(
      set.rules.map((r) => `${r.tier} ${r.ref.id}`),
      ['Cluster admin/all', 'Namespace team-a/ns/all', 'Baseline base/all'],
    );
    assert.equal(set.namespaceStart, 1);
  });

  it('decides a SOCKS4a name before DNS through Pass and namespaces alike', () => {
    const set = compilePolicies(policies, { tenancy: 'Namespaced' });
    const base = { ...makeContext({ host: 'example.com' }) };
    // Passed to team-a, whose Allow could match: resolve.
    assert.equal(decideBeforeResolve(set, { ...base, namespace: 'team-a', destPort: 443 }), null);
    // Port 80 is not passed: the cluster Deny-all refuses without a lookup.
    assert.equal(
      decideBeforeResolve(set, { ...base, namespace: 'team-a', destPort: 80 })?.rule?.id,
      'guard/everything-else',
    );
    // A Pass that names destination addresses may or may not apply once resolved: resolve.
    const cidrPass = compilePolicies(
      [clusterPolicy('c', [pass('p', { to: { cidrs: ['1.2.3.0/24'] } }), deny('rest')])],
      { tenancy: 'Namespaced' },
    );
    assert.equal(decideBeforeResolve(cidrPass, { ...base, namespace: 'team-a' }), null);
    // A Pass for every address hands the request to the namespace tier whatever the name resolves
    // to: with nothing there for it, the refusal is known now, and no lookup is spent on it.
    const passAll = compilePolicies(
      [
        clusterPolicy('c', [pass('p'), allow('after-pass')]),
        makePolicy('web', [allow('web', { to: { ports: ['443'] } })], { namespace: 'team-a' }),
      ],
      { tenancy: 'Namespaced' },
    );
    assert.equal(decideBeforeResolve(passAll, { ...base, namespace: 'team-a', destPort: 80 })?.reason, 'NoRuleMatched');
    assert.equal(decideBeforeResolve(passAll, { ...base, namespace: 'team-a', destPort: 443 }), null);
  });
});

describe('tiers: the index and the linear explanation agree', () => {
  // 150 rules: enough to build an index. explainDecision walks the list linearly; evaluate
  // merges index buckets and skips the cluster tier after a Pass by position.
  const policies: Socks4Policy[] = [];
  for (let i = 0; i < 30; i++) {
    policies.push(
      clusterPolicy(
        `c${i}`,
        [(i % 3 === 0 ? pass : i % 3 === 1 ? deny : allow)(`r`, { to: { ports: [String(1000 + i)] } })],
        { priority: i },
      ),
    );
    policies.push(
      clusterPolicy(`b${i}`, [allow('r', { to: { ports: [String(2000 + i)] } })], { tier: 'Baseline', priority: i }),
    );
    for (const ns of ['team-a', 'team-b', 'team-c']) {
      policies.push(
        makePolicy(
          `n${i}`,
          [(i % 2 === 0 ? allow : deny)('r', { to: { ports: [String(1000 + i), String(2000 + ((i * 7) % 30))] } })],
          { namespace: ns, priority: 100 - i },
        ),
      );
    }
  }
  for (const tenancy of ['Namespaced', 'Shared'] as const) {
    it(`${tenancy}: every port × namespace gives the same decision both ways`, () => {
      const set = compilePolicies(policies, { tenancy });
      assert.notEqual(set.index.dimension, 'none');
      let compared = 0;
      for (const namespace of ['team-a', 'team-b', 'team-c', 'team-z', null]) {
        for (let port = 995; port < 2035; port++) {
          const ctx = makeContext({ namespace, destPort: port });
          assert.deepEqual(evaluate(set, ctx), explainDecision(set, ctx).decision, `${namespace} port ${port}`);
          compared++;
        }
      }
      assert.equal(compared, 5 * 1040);
    });
  }
});

describe('tiers: validation', () => {
  const messages = (doc: unknown): string[] => validatePolicy(doc).map(formatIssue);
  const cluster = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'c' }) => ({
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'ClusterSocks4Policy',
    metadata,
    spec,
  });
  const cases: { name: string; doc: unknown; expected: string[] }[] = [
    { name: 'a cluster policy with Pass', doc: cluster({ rules: [{ name: 'p', action: 'Pass' }] }), expected: [] },
    {
      name: 'a baseline policy',
      doc: cluster({ tier: 'Baseline', rules: [{ name: 'a', action: 'Allow' }] }),
      expected: [],
    },
    {
      name: 'Pass in a Socks4Policy',
      doc: { ...makePolicy('n', []), spec: { rules: [{ name: 'p', action: 'Pass' }] } },
      expected: [
        "spec.rules[0].action: Pass hands the decision to the client's namespace: only a ClusterSocks4Policy of tier Admin takes it; use Allow or Deny",
      ],
    },
    {
      name: 'Pass in a baseline policy',
      doc: cluster({ tier: 'Baseline', rules: [{ name: 'p', action: 'Pass' }] }),
      expected: [
        "spec.rules[0].action: Pass hands the decision to the client's namespace: only a ClusterSocks4Policy of tier Admin takes it; use Allow or Deny",
      ],
    },
    {
      name: 'a namespace on a cluster policy',
      doc: cluster({ rules: [] }, { name: 'c', namespace: 'team-a' }),
      expected: [
        'metadata.namespace: a ClusterSocks4Policy is cluster-scoped and has no namespace; remove metadata.namespace',
      ],
    },
    {
      name: 'a tier on a Socks4Policy',
      doc: { ...makePolicy('n', []), spec: { tier: 'Baseline', rules: [] } },
      expected: ['spec.tier: only a ClusterSocks4Policy has a tier; a Socks4Policy always governs its own namespace'],
    },
    {
      name: 'an unknown tier',
      doc: cluster({ tier: 'Low', rules: [] }),
      expected: ['spec.tier: must be one of Admin, Baseline, got "Low"'],
    },
    {
      name: 'limits on a Pass rule',
      doc: cluster({ rules: [{ name: 'p', action: 'Pass', limits: { concurrentSessions: { max: 1, key: 'Rule' } } }] }),
      expected: ['spec.rules[0].limits: only Allow rules take limits'],
    },
  ];
  for (const c of cases) it(`checks ${c.name}`, () => assert.deepEqual(messages(c.doc), c.expected));

  it('loads both kinds from one file; a cluster policy and a namespace policy may share a name', () => {
    const text = [
      'apiVersion: socks4-fleet.io/v1alpha1',
      'kind: ClusterSocks4Policy',
      'metadata: {name: web}',
      'spec: {rules: [{name: p, action: Pass}]}',
      '---',
      'apiVersion: socks4-fleet.io/v1alpha1',
      'kind: Socks4Policy',
      'metadata: {name: web}',
      'spec: {rules: [{name: a, action: Allow}]}',
      '---',
      'apiVersion: socks4-fleet.io/v1alpha1',
      'kind: ClusterSocks4Policy',
      'metadata: {name: web}',
      'spec: {rules: []}',
    ].join('\n');
    const { policies, issues } = loadPolicyText(text, 'f.yaml');
    assert.deepEqual(issues.map(formatIssue), [
      'web: metadata.name: duplicate policy web (first defined in document 1)',
    ]);
    assert.deepEqual(
      policies.map((p) => `${p.kind} ${p.metadata.namespace ?? '-'}/${p.metadata.name}`),
      ['ClusterSocks4Policy -/web', 'Socks4Policy default/web'],
    );
    assert.equal(outcome(policies, 'Shared', {}), 'allow Namespace default/web/a');
  });
});
