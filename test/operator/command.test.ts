// `socks4-fleet operator` flags and start-up failures, through the CLI (no cluster needed).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, startCli } from '../helpers/spawn.ts';
import { runMain } from '../helpers/run-main.ts';

// main() reads process.env: these cases describe the CLI with no REDIS_URL in its environment.
delete process.env.REDIS_URL;

test('the top-level help lists the operator command', async () => {
  const { code, out } = await runMain('--help');
  assert.equal(code, 0);
  assert.match(out, /^ {2}operator {2,}/m);
});

test('operator --help documents every flag group and exits 0', async () => {
  const { code, out } = await runMain('operator', '--help');
  assert.equal(code, 0);
  for (const flag of [
    '--kubeconfig',
    '--namespaces',
    '--no-leader-elect',
    '--lease-duration',
    '--renew-deadline',
    '--retry-period',
    '--ops-listen',
    '--resync',
    '--workers',
    '--redis-url',
    '--redis-prefix',
  ]) {
    assert.ok(out.includes(flag), flag);
  }
  assert.match(out, /^Usage: socks4-fleet operator \(--redis-url URL \| env REDIS_URL\)/);
});

const usageErrors: [string, string[], RegExp][] = [
  ['no Redis', [], /--redis-url URL \(or env REDIS_URL\) is required/],
  ['an unknown flag', ['--redis-url', 'redis://127.0.0.1:1', '--leader'], /Unknown option '--leader'/],
  [
    'a bad namespace',
    ['--redis-url', 'redis://127.0.0.1:1', '--namespaces', 'ok,Not_OK'],
    /--namespaces: "Not_OK" is not a namespace name/,
  ],
  [
    'a lease that is not whole seconds',
    ['--redis-url', 'redis://127.0.0.1:1', '--lease-duration', '1500ms'],
    /whole seconds/,
  ],
  [
    'a renew deadline not below the lease',
    ['--redis-url', 'redis://127.0.0.1:1', '--renew-deadline', '15s'],
    /--retry-period < --renew-deadline < --lease-duration/,
  ],
  // Refused, never read as "on": the off form is --no-leader-elect.
  [
    'a value on --leader-elect',
    ['--redis-url', 'redis://127.0.0.1:1', '--leader-elect=false'],
    /Option '--leader-elect' does not take an argument/,
  ],
  ['a bad duration', ['--redis-url', 'redis://127.0.0.1:1', '--resync', 'soon'], /--resync: "soon" is not a duration/],
  ['zero workers', ['--redis-url', 'redis://127.0.0.1:1', '--workers', '0'], /--workers/],
];

for (const [what, argv, message] of usageErrors) {
  test(`operator refuses ${what} with exit code 2`, async () => {
    const { code, err } = await runMain('operator', ...argv);
    assert.equal(code, 2);
    assert.match(err, message);
    assert.match(err, /see socks4-fleet operator --help/);
  });
}

test('operator with a kubeconfig that cannot be read exits 1 and names the file', async () => {
  const { code, err } = await runMain(
    'operator',
    '--redis-url',
    'redis://127.0.0.1:1',
    '--kubeconfig',
    '/nonexistent/kubeconfig',
  );
  assert.equal(code, 1);
  assert.match(err, /cannot load Kubernetes credentials from \/nonexistent\/kubeconfig/);
});

// The chart passes an external Redis URL this way, so its credentials stay out of the process list.
test('operator takes the Redis URL from env REDIS_URL when --redis-url is absent', async () => {
  const { code, output } = await runCli(['operator', '--kubeconfig', '/nonexistent/kubeconfig'], {
    REDIS_URL: 'redis://u:pw@127.0.0.1:1',
  });
  assert.equal(code, 1, output);
  assert.match(output, /cannot load Kubernetes credentials from \/nonexistent\/kubeconfig/, 'past the Redis flags');
});

test('operator refuses a bad REDIS_URL with exit code 2, naming the variable and not echoing it', async () => {
  const { code, output } = await runCli(['operator'], { REDIS_URL: 'redis//u:hunter2@127.0.0.1:1' });
  assert.equal(code, 2, output);
  assert.match(output, /^socks4-fleet operator: REDIS_URL: not a URL/);
  assert.match(output, /see socks4-fleet operator --help/);
  assert.doesNotMatch(output, /hunter2/);
});

test('--no-leader-elect and --leader-elect parse: the operator goes on to load its credentials', async () => {
  for (const flag of ['--no-leader-elect', '--leader-elect']) {
    const { code, err } = await runMain(
      'operator',
      '--redis-url',
      'redis://127.0.0.1:1',
      flag,
      '--kubeconfig',
      '/nonexistent/kubeconfig',
    );
    assert.equal(code, 1, `${flag}: ${err}`);
    assert.match(err, /cannot load Kubernetes credentials/);
  }
});

test('an operator that cannot open its ops port exits 1 and leaves nothing running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'operator-cli-'));
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    // Nothing listens on port 1: the operator starts watching (and retrying) in the background.
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      }),
    );
    const port = (busy.address() as AddressInfo).port;
    const cli = startCli([
      'operator',
      '--redis-url',
      'redis://127.0.0.1:1',
      '--kubeconfig',
      kubeconfig,
      '--ops-listen',
      `127.0.0.1:${port}`,
    ]);
    const code = await Promise.race([
      cli.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000)),
    ]);
    if (code === 'still running') await cli.stop('SIGKILL');
    assert.equal(code, 1, cli.output());
    // One line naming the flag and the fix (the proxy shares the default ops port).
    assert.match(
      cli.output(),
      new RegExp(
        `socks4-fleet operator: --ops-listen 127\\.0\\.0\\.1:${port}: address already in use; the proxy and the operator both default to 127\\.0\\.0\\.1:9090`,
      ),
    );
  } finally {
    busy.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
