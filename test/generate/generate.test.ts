// `make generate` (scripts/generate.ts): every generated file in the tree is what its generator
// makes from its source, and says so in its first lines; a stale one is named with the fix.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { renderAll } from '../../scripts/generate.ts';
import { findStale, writeGenerated, type GeneratedFile } from '../../scripts/generated.ts';
import { repoRoot } from '../helpers/spawn.ts';

let scratch: string;
let files: GeneratedFile[];
before(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'generate-test-'));
  files = await renderAll();
});
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('generated files', () => {
  test('every generated file is what its generator makes (else: run make generate)', () => {
    const stale = findStale(repoRoot, files);
    assert.deepEqual(stale, [], `\n${stale.join('\n')}`);
  });

  test('they include both CRDs, the chart copies and the reference', () => {
    const paths = files.map((f) => f.path);
    for (const p of ['deploy/crd/socks4policies.yaml', 'deploy/crd/clustersocks4policies.yaml', 'charts/socks4-fleet/files/crd/socks4policies.yaml', 'charts/socks4-fleet/files/crd/clustersocks4policies.yaml',
      'charts/socks4-fleet/files/rbac/operator-clusterrole.yaml', 'docs/reference.md']) assert.ok(paths.includes(p), p);
  });

  test('each says in its first lines that it is generated, by what, and to run make generate', () => {
    for (const file of files) {
      const head = file.path.endsWith('.json')
        ? String((JSON.parse(file.content) as { $comment?: string }).$comment)
        : file.content.split('\n').slice(0, 2).join('\n');
      assert.match(head, /Generated|Copied/, file.path);
      assert.ok(head.includes(file.generator), `${file.path} names ${file.generator}: ${head}`);
      assert.ok(head.includes('make generate'), `${file.path} says make generate: ${head}`);
    }
  });

  test('a stale or missing file is named with "run make generate"; writing repairs exactly those', () => {
    const root = path.join(scratch, 'tree');
    assert.equal(writeGenerated(root, files).length, files.length);
    assert.deepEqual(findStale(root, files), []);
    const crd = path.join(root, 'deploy/crd/socks4policies.yaml');
    writeFileSync(crd, readFileSync(crd, 'utf8').replace('maxItems: 256', 'maxItems: 257'));
    unlinkSync(path.join(root, 'charts/socks4-fleet/files/crd/socks4policies.yaml'));
    assert.deepEqual(findStale(root, files), [
      'deploy/crd/socks4policies.yaml is stale (made by scripts/gen-crds.ts): run make generate',
      'charts/socks4-fleet/files/crd/socks4policies.yaml is missing (made by scripts/generate.ts): run make generate',
    ]);
    assert.deepEqual(writeGenerated(root, files), ['deploy/crd/socks4policies.yaml', 'charts/socks4-fleet/files/crd/socks4policies.yaml']);
    assert.deepEqual(findStale(root, files), []);
  });

  test('node scripts/generate.ts --check passes on this tree', async () => {
    await promisify(execFile)(process.execPath, [path.join(repoRoot, 'scripts/generate.ts'), '--check'], { cwd: repoRoot })
      .catch((error: { stderr?: string }) => assert.fail(error.stderr));
  });
});
