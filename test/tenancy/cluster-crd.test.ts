// The generated ClusterSocks4Policy CRD on a real API server: cluster-scoped, Pass accepted in
// tier Admin and refused in tier Baseline by the API server itself, tier defaulted, and the proxy's
// validation agreeing on what the server accepted.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { validatePolicy } from '../../src/policy/validate.ts';
import { startTestCluster, type TestCluster } from '../operator/cluster.ts';

let cluster: TestCluster;
let dir: string;
before(async () => {
  cluster = await startTestCluster();
  dir = mkdtempSync(join(tmpdir(), 'cluster-crd-'));
});
after(async () => {
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

let count = 0;
async function apply(doc: unknown): Promise<string> {
  const file = join(dir, `doc-${count++}.yaml`);
  writeFileSync(file, stringify(doc));
  try {
    return await cluster.kubectl('apply', '-f', file);
  } catch (error) {
    throw new Error((error as { stderr?: string }).stderr ?? String(error));
  }
}

const clusterPolicy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'socks4-fleet.io/v1alpha1',
  kind: 'ClusterSocks4Policy',
  metadata: { name },
  spec,
});

test('the CRD is cluster-scoped, established, with a Tier column and short name', async () => {
  const crd = JSON.parse(await cluster.kubectl('get', 'crd', 'clustersocks4policies.socks4-fleet.io', '-o', 'json'));
  assert.equal(crd.spec.scope, 'Cluster');
  assert.deepEqual(crd.spec.names.shortNames, ['cs4p']);
  assert.ok(crd.spec.versions[0].additionalPrinterColumns.some((c: { name: string }) => c.name === 'Tier'));
  assert.equal(crd.status.conditions.find((c: { type: string }) => c.type === 'Established')?.status, 'True');
});

test('Pass in tier Admin is accepted, tier defaults to Admin, and the proxy validates the stored object', async () => {
  await apply(clusterPolicy('guard', { rules: [{ name: 'to-teams', action: 'Pass', to: { ports: ['443'] } }] }));
  const stored = JSON.parse(await cluster.kubectl('get', 'cs4p', 'guard', '-o', 'json'));
  assert.equal(stored.spec.tier, 'Admin');
  assert.equal(stored.metadata.namespace, undefined);
  assert.deepEqual(
    validatePolicy({
      apiVersion: stored.apiVersion,
      kind: stored.kind,
      metadata: { name: stored.metadata.name },
      spec: stored.spec,
    }),
    [],
  );
});

test('the API server refuses Pass in a Baseline policy, and Pass in a namespaced Socks4Policy', async () => {
  await assert.rejects(
    apply(clusterPolicy('base', { tier: 'Baseline', rules: [{ name: 'p', action: 'Pass' }] })),
    /Pass hands a request to the namespace tier/,
  );
  await assert.rejects(
    apply({
      apiVersion: 'socks4-fleet.io/v1alpha1',
      kind: 'Socks4Policy',
      metadata: { name: 'p', namespace: 'default' },
      spec: { rules: [{ name: 'p', action: 'Pass' }] },
    }),
    /Unsupported value: "Pass"/,
  );
  await assert.rejects(apply(clusterPolicy('bad-tier', { tier: 'Low', rules: [] })), /Unsupported value: "Low"/);
  await apply(
    clusterPolicy('base', { tier: 'Baseline', rules: [{ name: 'dns', action: 'Allow', to: { ports: ['53'] } }] }),
  );
});
