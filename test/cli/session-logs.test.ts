// Refusals at accept are visible (rate-limited, with counts), session lines carry the duration
// and the close cause, a session cut by a drain says so, and --log-level debug adds the accept.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { allowEchoPolicy, startPolicyWorkspace, type PolicyWorkspace } from '../helpers/policy-workspace.ts';
import { exchange, socks4Request, type Closable } from '../helpers/servers.ts';
import { freePort, startCli, type CliProcess } from '../helpers/spawn.ts';

let workspace: PolicyWorkspace;
let echo: Closable;
let policyFile: string;

before(async () => {
  workspace = await startPolicyWorkspace('socks4-logs-');
  echo = workspace.echo;
  policyFile = await workspace.write('policy.yaml', allowEchoPolicy(echo.port));
});

after(() => workspace?.close());

async function startProxy(...extra: string[]): Promise<{ proxy: CliProcess; port: number }> {
  const port = await freePort();
  const proxy = startCli([
    'proxy',
    '--policy-file',
    policyFile,
    '--listen',
    `127.0.0.1:${port}`,
    '--ops-listen',
    '127.0.0.1:0',
    ...extra,
  ]);
  await proxy.waitForOutput(/proxy listening/);
  return { proxy, port };
}

const connect = (port: number) => exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'logs'));

test('refusals at accept: the first logged at once, the rest as counts, not a line each; a client is served once a slot frees', async () => {
  const { proxy, port } = await startProxy('--max-sessions', '1');
  try {
    const held = await connect(port);
    assert.equal(held.reply[1], 90);
    const first = await connect(port);
    assert.equal(first.reply[1], 91);
    await proxy.waitForOutput(
      /"level":"warn".*"refused":\{"TooManySessions":1\}.*"msg":"connections refused at accept \(reply 91\)"/,
    );
    for (let i = 0; i < 5; i++) {
      const { reply, raw } = await connect(port);
      assert.equal(reply[1], 91);
      raw.socket.destroy();
    }
    // Counted, not one line each: bounded wait until the lines account for all six refusals.
    const counted = (): { lines: number; total: number } => {
      const lines = proxy
        .output()
        .split('\n')
        .filter((l) => l.includes('connections refused at accept'));
      const total = lines.reduce((n, l) => n + Number(/"TooManySessions":(\d+)/.exec(l)?.[1] ?? 0), 0);
      return { lines: lines.length, total };
    };
    for (let i = 0; i < 300 && counted().total < 6; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(counted().total, 6, proxy.output());
    assert.ok(counted().lines <= 3, `six refusals took ${counted().lines} lines`);
    // The legitimate client: served as soon as the held session ends.
    held.raw.socket.destroy();
    let served = 0;
    for (let attempt = 0; attempt < 100 && served !== 90; attempt++) {
      const { reply, raw } = await connect(port);
      served = reply[1] ?? 0;
      raw.socket.destroy();
      if (served !== 90) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(served, 90);
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('session lines carry durationMs and closeCause; a drain-cut session says so; debug logs the accept', async () => {
  const { proxy, port } = await startProxy('--drain-grace', '300ms', '--log-level', 'debug');
  try {
    const done = await connect(port);
    assert.equal(done.reply[1], 90);
    done.raw.socket.end();
    await proxy.waitForOutput(/"level":"debug".*"msg":"session accepted"/);
    await proxy.waitForOutput(/"reply":90,.*"durationMs":[0-9.]+,"closeCause":"closed".*"msg":"session closed"/);

    const refused = await exchange(
      port,
      socks4Request(1, echo.port + 1 === 65536 ? 1 : echo.port + 1, '127.0.0.1', 'logs'),
    );
    assert.equal(refused.reply[1], 91);
    await proxy.waitForOutput(/"reason":"NoRuleMatched".*"closeCause":"NoRuleMatched".*"msg":"session refused"/);

    const cut = await connect(port);
    assert.equal(cut.reply[1], 90);
    proxy.child.kill('SIGTERM');
    await proxy.waitForOutput(/"reply":90,.*"closeCause":"Draining".*"msg":"session cut by the drain"/);
    assert.equal(await proxy.exited, 0);
    cut.raw.socket.destroy();
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('a relay ended by --idle-timeout says closeCause idle', async () => {
  const { proxy, port } = await startProxy('--idle-timeout', '300ms');
  try {
    const idle = await connect(port);
    assert.equal(idle.reply[1], 90);
    await proxy.waitForOutput(/"reply":90,.*"closeCause":"idle".*"msg":"session closed"/);
    idle.raw.socket.destroy();
  } finally {
    await proxy.stop('SIGKILL');
  }
});
