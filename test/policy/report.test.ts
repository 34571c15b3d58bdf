// Report mode in the pure engine: a Report policy never decides, and what it would have decided
// is exactly what the fleet decides once the policy is switched to Enforce.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { asEnforced, evaluateReport, evaluateReportBeforeResolve } from '../../src/policy/report.ts';
import type { PolicyRule, Socks4Policy } from '../../src/policy/types.ts';
import { validatePolicy } from '../../src/policy/validate.ts';
import { formatIssue } from '../../src/policy/validate-fields.ts';
import { buildSnapshotDocument } from '../../src/rules/snapshot-document.ts';
import { makeContext, makePolicy } from './fixtures.ts';

function reportPolicy(name: string, rules: PolicyRule[], priority: number): Socks4Policy {
  const p = makePolicy(name, rules, { priority });
  return { ...p, spec: { ...p.spec, enforcement: 'Report' } };
}

const base = makePolicy(
  'base',
  [
    { name: 'deny-smtp', action: 'Deny', to: { ports: ['25'] } },
    { name: 'web', action: 'Allow', to: { ports: ['443'] } },
  ],
  { priority: 100 },
);
const trial = reportPolicy(
  'trial',
  [
    { name: 'no-alice', action: 'Deny', from: { userids: ['alice'] } },
    { name: 'metadata', action: 'Allow', to: { cidrs: ['0.0.0.0/0'], ports: ['80'] } },
  ],
  50,
);

describe('report mode: evaluation', () => {
  it('a matching Report Deny is recorded while the enforced rules decide', () => {
    const set = compilePolicies([base, trial]);
    const ctx = makeContext({ userId: 'alice' });
    assert.equal(evaluate(set, ctx).rule?.id, 'default/base/web');
    assert.equal(evaluate(set, ctx).action, 'allow');
    const would = evaluateReport(set, ctx);
    assert.deepEqual([would?.action, would?.reason, would?.rule?.id], ['deny', 'RuleDenied', 'default/trial/no-alice']);
  });

  it('records nothing when an enforced rule ahead of the Report policy decides', () => {
    const set = compilePolicies([base, reportPolicy('late', [{ name: 'all', action: 'Deny' }], 500)]);
    assert.equal(evaluateReport(set, makeContext({ destPort: 443 })), null, 'base/web decides first');
    assert.equal(
      evaluateReport(set, makeContext({ destPort: 8080 }))?.rule?.id,
      'default/late/all',
      'nothing enforced matched',
    );
    assert.equal(evaluate(set, makeContext({ destPort: 8080 })).reason, 'NoRuleMatched');
  });

  it('a Report Allow to a guarded address records the guard, not an allow', () => {
    const set = compilePolicies([base, trial]);
    const would = evaluateReport(set, makeContext({ userId: 'bob', destIp: '169.254.169.254', destPort: 80 }));
    assert.deepEqual(
      [would?.action, would?.reason, would?.rule?.id],
      ['deny', 'GuardedDestination', 'default/trial/metadata'],
    );
  });

  it('without Report policies there is no report view and nothing is recorded', () => {
    const set = compilePolicies([base]);
    assert.equal(set.report, null);
    assert.equal(evaluateReport(set, makeContext({ userId: 'alice' })), null);
  });

  it('counts Report rules as compiled rules but never evaluates them for the decision', () => {
    const set = compilePolicies([trial]);
    assert.equal(set.ruleCount, 2);
    assert.equal(set.rules.length, 0);
    assert.equal(evaluate(set, makeContext({ userId: 'alice' })).reason, 'NoRuleMatched');
  });

  it('before resolution: records a Report Deny that needs no address, nothing when one would be needed', () => {
    const set = compilePolicies([base, trial]);
    const unresolved = {
      command: 'connect' as const,
      sourceIp: '10.0.0.1',
      userId: 'alice',
      host: 'example.com',
      destPort: 25,
      selfAddresses: new Set<string>(),
    };
    assert.equal(evaluateReportBeforeResolve(set, unresolved)?.rule?.id, 'default/trial/no-alice');
    assert.equal(
      evaluateReportBeforeResolve(set, { ...unresolved, userId: 'bob', destPort: 80 }),
      null,
      'trial/metadata needs the address',
    );
  });

  it('the law: switching every Report policy to Enforce decides what report mode recorded', () => {
    const policies = [
      base,
      trial,
      reportPolicy('later', [{ name: 'no-8080', action: 'Deny', to: { ports: ['8080'] } }], 200),
    ];
    const set = compilePolicies(policies);
    const switched = compilePolicies(asEnforced(policies));
    let recorded = 0;
    for (const userId of ['alice', 'bob']) {
      for (const destPort of [25, 80, 443, 8080]) {
        for (const destIp of ['93.184.216.34', '127.0.0.1']) {
          const ctx = makeContext({ userId, destPort, destIp });
          const report = evaluateReport(set, ctx);
          if (report !== null) recorded++;
          assert.deepEqual(
            evaluate(switched, ctx),
            report ?? evaluate(set, ctx),
            JSON.stringify({ userId, destPort, destIp }),
          );
        }
      }
    }
    assert.ok(recorded >= 8, `report decisions were exercised (${recorded})`);
  });
});

describe('report mode: schema and snapshots', () => {
  it('accepts Enforce and Report and names the field for anything else', () => {
    for (const enforcement of ['Enforce', 'Report'])
      assert.deepEqual(validatePolicy({ ...base, spec: { ...base.spec, enforcement } }), []);
    const issues = validatePolicy({ ...base, spec: { ...base.spec, enforcement: 'report' } });
    assert.deepEqual(issues.map(formatIssue), ['spec.enforcement: must be one of Enforce, Report, got "report"']);
  });

  it('`enforcement: Enforce` written or omitted is the same snapshot; Report is another', () => {
    const explicit = { ...base, spec: { ...base.spec, enforcement: 'Enforce' as const } };
    const version = (p: Socks4Policy): string => buildSnapshotDocument([p]).document.version;
    assert.equal(version(explicit), version(base));
    const report = { ...base, spec: { ...base.spec, enforcement: 'Report' as const } };
    assert.notEqual(version(report), version(base));
    assert.equal(buildSnapshotDocument([report]).document.policies[0]?.spec.enforcement, 'Report');
  });
});
