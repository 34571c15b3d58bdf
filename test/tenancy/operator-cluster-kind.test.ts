// The operator's pure decisions for ClusterSocks4Policy: keyed by name alone (never colliding with
// a namespaced policy of the same name), validated as the cluster kind, published Namespaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assessPolicy,
  entriesFromSnapshot,
  FINALIZER,
  planPolicy,
  planSnapshot,
  recordPublished,
  type ObservedPolicy,
} from '../../operator/reconcile.ts';
import { policyId } from '../../src/policy/types.ts';
import { buildSnapshotDocument, parseSnapshotDocument } from '../../src/rules/snapshot-document.ts';

const NOW = new Date('2030-01-02T03:04:05.678Z');

function observed(
  kind: 'Socks4Policy' | 'ClusterSocks4Policy',
  name: string,
  spec: unknown,
  namespace?: string,
): ObservedPolicy {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind,
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      uid: `uid-${kind}-${name}`,
      generation: 1,
      resourceVersion: '3',
      finalizers: [FINALIZER],
    },
    spec,
  };
}

// As the API server stores it: tier defaulted by the CRD.
const guard = observed('ClusterSocks4Policy', 'web', {
  priority: 5,
  tier: 'Admin',
  rules: [{ name: 'pass', action: 'Pass' }],
});
const teamWeb = observed('Socks4Policy', 'web', { rules: [{ name: 'a', action: 'Allow' }] }, 'web');

test('a cluster policy is keyed by its name; a namespace "web" with a policy "web" is another key', () => {
  assert.equal(policyId(guard), 'web');
  assert.equal(policyId(teamWeb), 'web/web');
});

test('a cluster policy from the API server validates as the cluster kind, Pass included', () => {
  const assessed = assessPolicy(guard);
  assert.equal(assessed.ok, true);
  assert.equal(assessed.ok && assessed.policy.kind, 'ClusterSocks4Policy');
  assert.equal(assessed.ok && assessed.policy.metadata.namespace, undefined);
  // The same rules in a namespaced policy are refused (Pass is the cluster tier's).
  const misplaced = assessPolicy(observed('Socks4Policy', 'p', { rules: [{ name: 'pass', action: 'Pass' }] }, 'team'));
  assert.equal(misplaced.ok, false);
});

test('both kinds go into one Namespaced snapshot and come back with their keys; the status names the snapshot', () => {
  const desired = planSnapshot([guard, teamWeb], null);
  assert.deepEqual([...desired.entries.keys()], ['web', 'web/web']);
  const { document, json } = buildSnapshotDocument(desired.policies, { tenancy: 'Namespaced' });
  assert.equal(document.tenancy, 'Namespaced');
  const parsed = parseSnapshotDocument(json, document.version);
  assert.equal(parsed.snapshot.compiled.tenancy, 'Namespaced');
  assert.deepEqual(
    parsed.snapshot.compiled.rules.map((r) => `${r.tier} ${r.ref.id}`),
    ['Cluster web/pass', 'Namespace web/web/a'],
  );
  assert.deepEqual(
    [...entriesFromSnapshot(document.version, parsed.document.policies).entries.keys()],
    ['web', 'web/web'],
  );
  const published = recordPublished(
    desired,
    document.version,
    new Map([
      ['web', guard],
      ['web/web', teamWeb],
    ]),
  );
  assert.equal(planPolicy(guard, published, NOW).status?.snapshotVersion, document.version);
  // Shared (policy push) and Namespaced are different versions of the same policies.
  assert.notEqual(buildSnapshotDocument(desired.policies).document.version, document.version);
});
