// One id per policy (policyId): `namespace/name`, or the bare name for a ClusterSocks4Policy. The
// Report-mode keys and `policy diff` used to build their own `namespace/name` (with `default/`
// for the cluster kind), so a Report ClusterSocks4Policy was never recorded and a cluster policy
// and a namespaced one of the same name in `default` were one policy to the diff.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { diffPolicies } from '../../src/policy/diff.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import { evaluateReport } from '../../src/policy/report.ts';

function load(text: string) {
  const { policies, issues } = loadPolicyText(text, 'test');
  assert.deepEqual(issues, []);
  return policies;
}

const reportCluster = `
apiVersion: socks4-fleet.io/v1alpha1
kind: ClusterSocks4Policy
metadata: {name: watch}
spec:
  enforcement: Report
  rules:
    - {name: would-deny, action: Deny, to: {cidrs: ["127.0.0.1/32"]}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: p}
spec:
  rules:
    - {name: allow, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

const ctx = {
  command: 'connect' as const,
  sourceIp: '10.0.0.1',
  userId: '',
  host: null,
  destIp: '127.0.0.1',
  destPort: 80,
  selfAddresses: new Set<string>(),
};

test('a Report ClusterSocks4Policy records what it would have decided', () => {
  const set = compilePolicies(load(reportCluster));
  const would = evaluateReport(set, ctx);
  assert.equal(would?.rule?.id, 'watch/would-deny');
  assert.equal(would?.reason, 'RuleDenied');
});

test('policy diff keeps a cluster policy and a namespaced one of the same name apart', () => {
  const [cluster, namespaced] = load(`
apiVersion: socks4-fleet.io/v1alpha1
kind: ClusterSocks4Policy
metadata: {name: web}
spec: {rules: [{name: r, action: Deny}]}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: web, namespace: default}
spec: {rules: [{name: r, action: Deny}]}
`);
  const changes = diffPolicies([namespaced!], [cluster!, namespaced!]);
  assert.deepEqual(
    changes.map((c) => `${c.kind} ${c.key}`),
    ['added web'],
  );
});
