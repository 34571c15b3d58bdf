// Deadlines and listener addresses that a user configures: the upstream connect timeout against a
// destination that drops SYNs (in a network namespace the test makes), the spec's 2-minute defaults
// read from the running proxy rather than waited for, the relay idle timeout, and --bind-address.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { defaultServerConfig } from '../../src/server/session-env.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { startProxyProcess } from '../helpers/fleet.ts';
import { cleanEnv } from '../helpers/spawn.ts';
import { connectRaw, socks4Request, startEchoServer, startProxy } from '../helpers/servers.ts';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
before(async () => {
  echo = await startEchoServer();
});
after(() => echo.close());

test('connect timeout: a destination that drops SYNs gets 91 with UpstreamTimeout, at the deadline', async () => {
  const timeoutMs = 400;
  const script = fileURLToPath(new URL('./netns-dial.ts', import.meta.url));
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(
      'unshare',
      ['--net', '--', process.execPath, script, String(timeoutMs)],
      { env: cleanEnv(), timeout: 60_000 },
      (error, out, err) =>
        error
          ? reject(new Error(`unshare --net failed (root and util-linux are needed): ${error.message}\n${err}`))
          : resolve({ stdout: out }),
    );
  });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    links: string[];
    reply: number[];
    reason: string | null;
    replyMs: number;
  };
  assert.deepEqual(result.links.sort(), ['drop0', 'drop1', 'lo'], 'the dial ran in a namespace of its own');
  assert.deepEqual(result.reply, [0, 91, 0, 0, 0, 0, 0, 0]);
  assert.equal(result.reason, 'UpstreamTimeout');
  // Not before the deadline (a refusal or unreachable error would come at once), and not long after.
  assert.ok(result.replyMs >= timeoutMs - 5, `replied after ${result.replyMs} ms, before the ${timeoutMs} ms deadline`);
  assert.ok(result.replyMs < timeoutMs + 10_000, `replied after ${result.replyMs} ms`);
});

test('defaults: connect and BIND accept 2 minutes (the spec), handshake 10 s, idle off', () => {
  assert.equal(defaultServerConfig.connectTimeoutMs, 120_000);
  assert.equal(defaultServerConfig.bindAcceptTimeoutMs, 120_000);
  assert.equal(defaultServerConfig.handshakeTimeoutMs, 10_000);
  assert.equal(defaultServerConfig.idleTimeoutMs, 0);
});

test('the proxy command runs with those defaults, and BIND listens on --bind-address', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'timeouts-'));
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: bind}
spec:
  rules:
    - {name: bind-from-loopback, action: Allow, commands: [Bind], to: {cidrs: ["127.0.0.1/32"]}}
`,
  );
  // No timeout flag is given: what the pod reports are the defaults it runs with.
  const proxy = await startProxyProcess(['--policy-file', file, '--bind-address', '127.0.0.5']);
  try {
    const line = proxy
      .log()
      .split('\n')
      .find((l) => l.includes('socks4-fleet proxy listening'))!;
    const { timeouts } = JSON.parse(line) as { timeouts: Record<string, number> };
    assert.equal(timeouts.connectMs, 120_000);
    assert.equal(timeouts.bindAcceptMs, 120_000);
    assert.equal(timeouts.handshakeMs, 10_000);
    assert.equal(timeouts.idleMs, 0);

    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(2, 4000, '127.0.0.1', 'binder'));
    const first = await raw.read(8, 10_000);
    assert.equal(first[1], 90);
    assert.equal(first.subarray(4, 8).join('.'), '127.0.0.5', 'the first reply names the --bind-address listener');
    const peer = net.connect({ host: '127.0.0.5', port: first.readUInt16BE(2), localAddress: '127.0.0.1' });
    peer.on('error', () => {});
    const second = await raw.read(8, 10_000);
    assert.equal(second[1], 90, 'the peer reached the listener on 127.0.0.5');
    peer.write('via 127.0.0.5');
    assert.equal((await raw.read(13)).toString(), 'via 127.0.0.5');
    peer.destroy();
    raw.socket.destroy();
  } finally {
    await proxy.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('idle timeout: a relay with no bytes either way for the idle time is closed; traffic keeps it open', async () => {
  const idleMs = 1500;
  const proxy = await startProxy(
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: idle}
spec:
  rules:
    - {name: echo, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"]}}
`,
    { config: { idleTimeoutMs: idleMs } },
  );
  const ended: SessionInfo[] = [];
  const onEnd = (message: unknown): void => void ended.push({ ...(message as SessionInfo) });
  channels.sessionEnd.subscribe(onEnd);
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'idle'));
    assert.equal((await raw.read(8))[1], 90);
    // Pings a fifth of the idle time apart, for twice the idle time: every one answered.
    const started = performance.now();
    let longestGap = 0;
    let last = started;
    while (performance.now() - started < 2 * idleMs) {
      raw.socket.write('p');
      assert.equal(
        (await raw.read(1, idleMs)).toString(),
        'p',
        `a ping went unanswered after ${Math.round(performance.now() - started)} ms`,
      );
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      await new Promise((resolve) => setTimeout(resolve, idleMs / 5));
    }
    assert.ok(longestGap < idleMs, `the machine stalled ${longestGap} ms between pings; the check proves nothing`);
    assert.equal(ended.length, 0, 'the session stayed open while bytes moved');
    // Then silence: the proxy closes the session, not before idleMs after the last byte it moved.
    const lastSent = performance.now();
    raw.socket.write('q');
    assert.equal((await raw.read(1)).toString(), 'q');
    const echoedAt = performance.now();
    const closed = await Promise.race([
      raw.closed.then(() => performance.now()),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), idleMs + 10_000)),
    ]);
    assert.ok(closed !== null, 'the idle session was never closed');
    assert.ok(closed - lastSent >= idleMs - 5, `closed ${Math.round(closed - lastSent)} ms after the last byte`);
    assert.ok(closed - echoedAt < idleMs + 10_000);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.replyCode, 90);
    assert.equal(ended[0]!.closeCause, 'idle', 'the log line and metrics say the idle timeout ended it');
    assert.equal(ended[0]!.bytesToClient, ended[0]!.bytesFromClient, 'every ping came back');
  } finally {
    channels.sessionEnd.unsubscribe(onEnd);
    await proxy.close();
  }
});
