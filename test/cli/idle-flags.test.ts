// Flags that would do nothing are refused with a line that says so: fleet-mode flags beside
// --policy-file, a repeated --policy-file. `policy --help` is help (exit 0). The operator with no
// credentials says none were found instead of relisting localhost:8080 forever.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/spawn.ts';
import { runMain } from '../helpers/run-main.ts';

delete process.env.REDIS_URL;

const FILE = 'examples/policy.yaml';

test('fleet-mode flags beside --policy-file are refused, naming each one', async () => {
  const one = await runMain('proxy', '--policy-file', FILE, '--redis-prefix', 'fleet');
  assert.equal(one.code, 2);
  assert.match(
    one.err,
    /--redis-prefix only applies in fleet mode \(--redis-url\); with --policy-file no Redis is used: remove it/,
  );
  const two = await runMain('proxy', '--policy-file', FILE, '--limits-fail-mode', 'closed', '--rules-refresh', '5s');
  assert.equal(two.code, 2);
  assert.match(two.err, /--limits-fail-mode, --rules-refresh only apply in fleet mode/);
});

test('a repeated --policy-file is refused (only one would be read)', async () => {
  const { code, err } = await runMain('proxy', '--policy-file', FILE, '--policy-file', FILE);
  assert.equal(code, 2);
  assert.match(err, /--policy-file given more than once; the proxy reads one file/);
});

test('policy --help and policy -h print the subcommands and exit 0; bare `policy` is a usage error', async () => {
  for (const flag of ['--help', '-h']) {
    const { code, out } = await runMain('policy', flag);
    assert.equal(code, 0);
    assert.match(out, /^Usage: socks4-fleet policy <validate\|explain\|push>/);
    assert.match(out, /policy push FILE/);
  }
  assert.equal((await runMain('policy')).code, 2);
});

test('the operator with no kubeconfig and no service account says so and exits 1', async () => {
  const home = mkdtempSync(path.join(tmpdir(), 'no-kube-'));
  try {
    const started = Date.now();
    const { code, output } = await runCli(
      ['operator', '--redis-url', 'redis://127.0.0.1:1', '--ops-listen', '127.0.0.1:0'],
      {
        HOME: home,
        KUBECONFIG: '',
        KUBERNETES_SERVICE_HOST: '',
      },
    );
    assert.equal(code, 1, output);
    assert.match(
      output,
      /socks4-fleet operator: no Kubernetes credentials found: no --kubeconfig, no \$KUBECONFIG, no .*\.kube\/config and no in-cluster service account .*pass --kubeconfig FILE, or run it in a pod/,
    );
    assert.ok(Date.now() - started < 20_000);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
