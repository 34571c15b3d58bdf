// `make generate`: every generated file in the repository, from its one source.
//   deploy/crd/*.yaml                        scripts/gen-crds.ts, from src/policy/schema.ts
//   charts/socks4-fleet/values.schema.json   scripts/gen-values-schema.ts, from annotated values.yaml
//   charts/socks4-fleet/files/**             copies of deploy/ (Helm reads only files inside the chart)
//   docs/reference.md                        scripts/gen-reference.ts, from the code
// Each says so in its first lines. test/generate/ fails when any is stale.
//
// Usage: node scripts/generate.ts          rewrite what changed, naming each file
//        node scripts/generate.ts --check  exit 1, naming each stale file
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { renderCrds } from './gen-crds.ts';
import { renderReferenceFile } from './gen-reference.ts';
import { renderValuesSchema } from './gen-values-schema.ts';
import { findStale, writeGenerated, type GeneratedFile } from './generated.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CHART_FILES = 'charts/socks4-fleet/files';
/** source (under deploy/) → copy (under CHART_FILES/). */
const CHART_COPIES = [
  ['deploy/crd/socks4policies.yaml', 'crd/socks4policies.yaml'],
  ['deploy/crd/clustersocks4policies.yaml', 'crd/clustersocks4policies.yaml'],
  ['deploy/rbac/operator-cluster-policies-role.yaml', 'rbac/operator-cluster-policies-role.yaml'],
  ['deploy/rbac/operator-clusterrole.yaml', 'rbac/operator-clusterrole.yaml'],
  ['deploy/rbac/operator-leader-election-role.yaml', 'rbac/operator-leader-election-role.yaml'],
] as const;

/** The chart's copies of deploy/, from the generated CRDs themselves so one run settles both. */
function chartCopies(root: string, generated: readonly GeneratedFile[]): GeneratedFile[] {
  return CHART_COPIES.map(([source, copy]) => ({
    path: `${CHART_FILES}/${copy}`,
    content:
      `# Copied from ${source} by scripts/generate.ts: edit the original, then run \`make generate\`.\n` +
      (generated.find((f) => f.path === source)?.content ?? readFileSync(path.join(root, source), 'utf8')),
    generator: 'scripts/generate.ts',
  }));
}

/** Every generated file, as its generator makes it now. */
export async function renderAll(root = ROOT): Promise<GeneratedFile[]> {
  const crds = renderCrds();
  return [...crds, ...chartCopies(root, crds), renderValuesSchema(root), await renderReferenceFile()];
}

if (import.meta.main) {
  const files = await renderAll();
  if (process.argv.includes('--check')) {
    const stale = findStale(ROOT, files);
    for (const line of stale) process.stderr.write(`generate: ${line}\n`);
    process.exitCode = stale.length === 0 ? 0 : 1;
  } else {
    for (const file of writeGenerated(ROOT, files)) process.stdout.write(`wrote ${file}\n`);
  }
}
