// The proxy as users run it: `socks4-fleet proxy --policy-file …` as a process, its ops
// endpoints, reload on file change, a bad file refused, and drain on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allowEchoPolicy } from '../helpers/policy-workspace.ts';
import { exchange, socks4Request, startEchoServer, type Closable } from '../helpers/servers.ts';
import { freePort, runCli, startCli, type CliProcess } from '../helpers/spawn.ts';

const denyAll = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: cli}
spec:
  rules:
    - {name: nothing, action: Deny}
`;

let dir: string;
let echo: Closable;
let proxy: CliProcess;
let socksPort: number;
let opsPort: number;
let policyFile: string;

async function get(pathname: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${opsPort}${pathname}`);
  return { status: res.status, body: await res.text() };
}

async function replyCode(): Promise<number | undefined> {
  const { reply, raw } = await exchange(socksPort, socks4Request(1, echo.port, '127.0.0.1', 'cli'));
  raw.socket.destroy();
  return reply[1];
}

/** Polls (bounded) until the proxy's answer becomes `code` after a file change. */
async function expectReplyBecomes(code: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await replyCode()) === code) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`reply never became ${code}; output:\n${proxy.output()}`);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-cli-'));
  echo = await startEchoServer();
  policyFile = path.join(dir, 'policy.yaml');
  await writeFile(policyFile, allowEchoPolicy(echo.port));
  socksPort = await freePort();
  opsPort = await freePort();
  proxy = startCli([
    'proxy',
    '--listen',
    `127.0.0.1:${socksPort}`,
    '--ops-listen',
    `127.0.0.1:${opsPort}`,
    '--policy-file',
    policyFile,
    '--drain-grace',
    '5s',
  ]);
  await proxy.waitForOutput(/proxy listening/);
});

after(async () => {
  await proxy.stop('SIGKILL');
  await echo.close();
  await rm(dir, { recursive: true, force: true });
});

test('ops endpoints: healthz, readyz and Prometheus metrics with the session counted', async () => {
  assert.equal((await get('/healthz')).status, 200);
  assert.equal((await get('/readyz')).status, 200);
  assert.equal(await replyCode(), 90);
  // The session ends when the proxy sees the close: poll (bounded) until it is counted.
  let metrics = await get('/metrics');
  for (let i = 0; i < 50 && !/reply="90"/.test(metrics.body); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    metrics = await get('/metrics');
  }
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /socks4_sessions_total\{command="connect",reply="90",reason=""\} \d+/);
  assert.match(metrics.body, /socks4_handshake_duration_seconds_bucket/);
  assert.match(metrics.body, /socks4_snapshot_age_seconds \d/);
  assert.doesNotMatch(metrics.body, /127\.0\.0\.1|userid="cli"/); // no per-client labels
});

test('the policy file reloads on change; a bad file is refused and the old rules stay', async () => {
  // Replace the file the way editors and ConfigMaps do: write aside, rename over.
  const next = path.join(dir, 'next.yaml');
  await writeFile(next, denyAll);
  await rename(next, policyFile);
  await expectReplyBecomes(91);

  await writeFile(policyFile, allowEchoPolicy(echo.port).replace('"127.0.0.1/32"', '"127.0.0.1/99"'));
  await proxy.waitForOutput(/rules snapshot refused/);
  assert.match(proxy.output(), /spec\.rules\[0\]\.to\.cidrs\[0\]/);
  assert.equal(await replyCode(), 91, 'the last good rules (deny all) stay in force');

  await writeFile(policyFile, allowEchoPolicy(echo.port));
  await expectReplyBecomes(90);
});

test('SIGTERM: stops accepting and fails readiness, lets a live session finish, then exits 0', async () => {
  const { reply, raw } = await exchange(socksPort, socks4Request(1, echo.port, '127.0.0.1', 'drain'));
  assert.equal(reply[1], 90);
  proxy.child.kill('SIGTERM');
  await proxy.waitForOutput(/draining/);
  // The established session still relays during the grace period.
  raw.socket.write('still-here');
  assert.equal((await raw.read(10)).toString(), 'still-here');
  await assert.rejects(fetch(`http://127.0.0.1:${socksPort}`), 'the SOCKS listener is closed');
  raw.socket.end();
  assert.equal(await proxy.exited, 0);
  assert.match(proxy.output(), /drained; exiting/);
});

test('policy validate and --help through the CLI', async () => {
  const ok = await runCli(['policy', 'validate', 'examples/policy.yaml']);
  assert.equal(ok.code, 0, ok.output);
  const help = await runCli(['proxy', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.output, /--policy-file FILE/);
  const bad = await runCli(['proxy', '--listen', 'nowhere', '--policy-file', 'examples/policy.yaml']);
  assert.equal(bad.code, 2);
  assert.match(bad.output, /--listen: "nowhere" is not HOST:PORT/);
  assert.match(help.output, /--guard-endpoint HOST\[:PORT\]/);
  const badGuard = await runCli(['proxy', '--guard-endpoint', 'redis:1:2', '--policy-file', 'examples/policy.yaml']);
  assert.equal(badGuard.code, 2);
  assert.match(badGuard.output, /--guard-endpoint: "redis:1:2" is not HOST or HOST:PORT/);
  assert.doesNotMatch(badGuard.output, /\n\s+at /, 'no stack trace for a user mistake');
});
