// Generates deploy/crd/clustersocks4policies.yaml from deploy/crd/socks4policies.yaml: the two
// kinds share one spec (DESIGN "Tenancy"), so the cluster kind's schema is derived, never kept by
// hand. Only what differs is written here: names and scope, action Pass, spec.tier, and a Tier
// column. scripts/sync-chart-files.sh runs this (and checks it with --check).
//
// Usage: node scripts/gen-cluster-crd.ts            write the file
//        node scripts/gen-cluster-crd.ts --stdout   print what the file must contain
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';

const root = join(import.meta.dirname, '..');
const SOURCE = 'deploy/crd/socks4policies.yaml';
const TARGET = 'deploy/crd/clustersocks4policies.yaml';

const doc = parseDocument(readFileSync(join(root, SOURCE), 'utf8'));
doc.commentBefore = [
  ` Generated from ${SOURCE} by scripts/gen-cluster-crd.ts: edit that file, then run`,
  ' `make chart-sync`.',
  '',
  ' ClusterSocks4Policy: the same spec, cluster-scoped. Tier Admin (the default) is evaluated before',
  " every namespace's Socks4Policy and governs every client; action Pass hands a request to the",
  " client's namespace. Tier Baseline is evaluated after the namespaces (as AdminNetworkPolicy and",
  ' BaselineAdminNetworkPolicy do for NetworkPolicy).',
].join('\n');
// The source's own header ("written by hand") describes the source, not this file.
const first = (doc.contents as { items?: { key?: { commentBefore?: string | null } }[] } | null)?.items?.[0]?.key;
if (first !== undefined) first.commentBefore = null;
doc.setIn(['metadata', 'name'], 'clustersocks4policies.socks4-fleet.io');
doc.setIn(['spec', 'names'], doc.createNode({
  kind: 'ClusterSocks4Policy',
  listKind: 'ClusterSocks4PolicyList',
  plural: 'clustersocks4policies',
  singular: 'clustersocks4policy',
  shortNames: ['cs4p'],
  categories: ['socks4-fleet'],
}, { flow: false }));
doc.setIn(['spec', 'scope'], 'Cluster');
const version = ['spec', 'versions', 0];
const columns = doc.getIn([...version, 'additionalPrinterColumns']) as { items: unknown[] };
columns.items.splice(2, 0, doc.createNode({ name: 'Tier', type: 'string', jsonPath: '.spec.tier' }));
const schema = [...version, 'schema', 'openAPIV3Schema'];
doc.setIn([...schema, 'description'], 'Cluster-wide SOCKS4/SOCKS4a access rules: before every namespace (tier Admin) or after them (tier Baseline).');
const spec = [...schema, 'properties', 'spec'];
doc.setIn([...spec, 'properties', 'priority', 'description'], 'Cluster policies of one tier are evaluated by priority (lower first), then name.');
doc.setIn([...spec, 'properties', 'tier'], doc.createNode({
  type: 'string',
  enum: ['Admin', 'Baseline'],
  default: 'Admin',
  description: "Admin: evaluated before every namespace's policies. Baseline: after them, before the default deny.",
}));
doc.setIn([...spec, 'x-kubernetes-validations'], doc.createNode([{
  rule: "!has(self.tier) || self.tier != 'Baseline' || self.rules.all(r, r.action != 'Pass')",
  message: 'Pass hands a request to the namespace tier: a Baseline policy comes after it and cannot pass',
}]));
const action = [...spec, 'properties', 'rules', 'items', 'properties', 'action'];
doc.setIn([...action, 'enum'], doc.createNode(['Allow', 'Deny', 'Pass'], { flow: true }));
doc.setIn([...action, 'description'], "Pass (tier Admin only): skip the rest of the cluster tier; the client's namespace decides.");

const text = doc.toString({ lineWidth: 0 });
if (process.argv.includes('--stdout')) process.stdout.write(text);
else writeFileSync(join(root, TARGET), text);
