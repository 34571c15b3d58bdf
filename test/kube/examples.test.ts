// The README's Kubernetes step, run exactly as written on a real kube-apiserver: every
// `kubectl ... -f examples/...` line of README.md is applied as is, in a namespace other than
// "default". The examples name no namespace, so they land where -n says (a pinned
// `namespace: default` made kubectl refuse the mismatch).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startTestCluster, type TestCluster } from '../operator/cluster.ts';
import { repoRoot } from '../helpers/spawn.ts';

let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster();
});

after(async () => {
  await cluster?.stop();
});

/** The README's command lines that apply an example file, comments dropped. */
function readmeApplyLines(): string[][] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  return readme
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => /^kubectl apply .*-f examples\//.test(line))
    .map((line) => line.split(/\s+/));
}

test('no example pins a namespace', () => {
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'examples/policy.yaml'), 'utf8'));
  const objects = docs.map((d) => d.toJS() as { metadata?: { namespace?: string } } | null).filter((o) => o !== null);
  assert.ok(objects.length >= 2);
  for (const object of objects) assert.equal(object.metadata?.namespace, undefined);
});

test('kubectl apply -n <namespace> -f examples/policy.yaml, as the README shows it, creates every policy there', async () => {
  const lines = readmeApplyLines();
  assert.ok(lines.length >= 1, 'README.md shows a kubectl apply of an example');
  for (const [kubectl, ...args] of lines) {
    assert.equal(kubectl, 'kubectl');
    const namespace = args[args.indexOf('-n') + 1] as string;
    assert.notEqual(namespace, 'default');
    await cluster.kubectl('create', 'namespace', namespace).catch(() => {}); // the README's helm install creates it
    const output = await cluster.kubectl(...args);
    assert.match(output, /socks4policy\.socks4-fleet\.io\/local-dev created/);
    const listed = JSON.parse(await cluster.kubectl('get', 'socks4policies', '-n', namespace, '-o', 'json')) as {
      items: { metadata: { name: string } }[];
    };
    assert.deepEqual(listed.items.map((i) => i.metadata.name).sort(), ['local-dev', 'office-egress']);
  }
});
