// Start-up mistakes get one line naming the flag and the fix, never a stack trace: exit 2 for
// usage errors, 1 for runtime failures. And the signals: SIGHUP reloads, a second SIGTERM or
// SIGINT during a drain says it forces the exit (and does).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { listenError } from '../../src/cli/proxy-lifecycle.ts';
import { startPolicyWorkspace, allowEchoPolicy, type PolicyWorkspace } from '../helpers/policy-workspace.ts';
import { exchange, socks4Request, type Closable } from '../helpers/servers.ts';
import { freePort, runCli, startCli } from '../helpers/spawn.ts';
import { expectProxyStartupError } from '../helpers/startup-error.ts';

let workspace: PolicyWorkspace;
let echo: Closable;
let policyFile: string;

before(async () => {
  workspace = await startPolicyWorkspace('socks4-startup-');
  echo = workspace.echo;
  policyFile = await workspace.write('policy.yaml', allowEchoPolicy(echo.port));
});

after(() => workspace?.close());

/** Holds a loopback port so the proxy cannot bind it. */
async function occupyPort(): Promise<{ port: number; close(): Promise<void> }> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const { port } = holder.address() as net.AddressInfo;
  return { port, close: () => new Promise((resolve) => holder.close(() => resolve())) };
}

test('the SOCKS port in use: one line naming --listen and the fix, exit 1', async () => {
  const held = await occupyPort();
  try {
    await expectProxyStartupError(
      { policyFile, listen: `127.0.0.1:${held.port}` },
      new RegExp(
        `^socks4-fleet proxy: --listen 127\\.0\\.0\\.1:${held.port}: address already in use; stop what holds it or pick another with --listen HOST:PORT$`,
      ),
    );
  } finally {
    await held.close();
  }
});

test('the ops port in use: names --ops-listen, says the operator shares the default, exit 1', async () => {
  const held = await occupyPort();
  try {
    await expectProxyStartupError(
      { policyFile, opsListen: `127.0.0.1:${held.port}` },
      /--ops-listen 127\.0\.0\.1:\d+: address already in use; the proxy and the operator both default to 127\.0\.0\.1:9090, so give one of them --ops-listen HOST:PORT \(:0 = any free port\)$/,
    );
  } finally {
    await held.close();
  }
  // A flag the user never typed is called the default, so they know where it came from.
  const error = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
  assert.match(
    listenError('ops-listen', '127.0.0.1:9090', true, error).message,
    /^--ops-listen 127\.0\.0\.1:9090 \(the default\): address already in use/,
  );
});

test('an invalid policy at start: one line naming the file and how to see every problem, exit 1', async () => {
  const bad = await workspace.write(
    'bad.yaml',
    'apiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nmetadata: {name: x}\nspec: {rules: [{name: r, action: Maybe}]}\n',
  );
  const output = await expectProxyStartupError(
    { policyFile: bad },
    /^socks4-fleet proxy: --policy-file .*bad\.yaml: not started, the file holds no usable rules: .*action.*Fix it \(socks4-fleet policy validate .*bad\.yaml lists every problem\)$/,
  );
  assert.doesNotMatch(output, /keeping the previous one/, 'there is no previous one');
  assert.match(output, /"msg":"rules snapshot refused; no rules are in force"/);
});

test('--log-level verbose: a usage error listing the levels, exit 2', async () => {
  for (const command of [
    ['proxy', '--policy-file', policyFile],
    ['operator', '--redis-url', 'redis://127.0.0.1:1'],
  ]) {
    const { code, output } = await runCli([...command, '--log-level', 'verbose']);
    assert.equal(code, 2, output);
    assert.match(output, /--log-level: "verbose" is not a level; use one of trace, debug, info, warn, error, silent/);
    assert.doesNotMatch(output, /\n\s+at .*\(/);
  }
});

test('SIGHUP reloads the rules and keeps serving; a second SIGTERM during the drain forces the exit', async () => {
  const socksPort = await freePort();
  const proxy = startCli([
    'proxy',
    '--policy-file',
    policyFile,
    '--listen',
    `127.0.0.1:${socksPort}`,
    '--ops-listen',
    '127.0.0.1:0',
    '--drain-grace',
    '2m',
  ]);
  try {
    await proxy.waitForOutput(/proxy listening/);
    // The start-up line says where the rules come from.
    assert.match(
      proxy.output(),
      new RegExp(
        `"rules":"file ${policyFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}".*"msg":"socks4-fleet proxy listening"`,
      ),
    );
    proxy.child.kill('SIGHUP');
    await proxy.waitForOutput(/"signal":"SIGHUP".*"msg":"reloading rules"/);
    // Still alive and serving after the SIGHUP (it used to kill the process with no log).
    const { reply, raw } = await exchange(socksPort, socks4Request(1, echo.port, '127.0.0.1', 'cli'));
    assert.equal(reply[1], 90);
    proxy.child.kill('SIGTERM');
    await proxy.waitForOutput(/"msg":"draining \(send the signal again to force the exit\)"/);
    const forcedAt = Date.now();
    proxy.child.kill('SIGINT');
    await proxy.waitForOutput(
      /"signal":"SIGINT".*"msg":"second signal while draining: forcing exit, closing every session now"/,
    );
    assert.equal(await proxy.exited, 0);
    // Far inside the 2-minute grace: the open session was cut, not waited for.
    assert.ok(Date.now() - forcedAt < 30_000, `exit took ${Date.now() - forcedAt} ms`);
    raw.socket.destroy();
  } finally {
    await proxy.stop('SIGKILL');
  }
});
