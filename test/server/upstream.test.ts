// The upstream dial (upstream.ts) through a real proxy session, for what connect.test.ts and
// timeouts.test.ts leave out: a connect error that is neither a refusal nor a timeout, the
// destination half-closing first, a chosen source address, and a client that hangs up while the
// connect is pending. Everything stays on 127.0.0.0/8 and in this process, so Stryker's coverage
// sees every line these tests run.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { connectUpstream } from '../../src/server/upstream.ts';
import { channels, type PhaseEvent, type SessionInfo } from '../../src/telemetry/events.ts';
import { connectRaw, socks4Request, startProxy } from '../helpers/servers.ts';
import { cleanEnv } from '../helpers/spawn.ts';

const allow = (cidr: string): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: upstream}
spec:
  rules:
    - {name: r, action: Allow, commands: [Connect], to: {cidrs: ["${cidr}"]}}
`;

/** Collects session ends; `next` waits for one, bounded, or fails with a message. */
function watchEnds(): { ended: SessionInfo[]; next(timeoutMs: number): Promise<SessionInfo>; stop(): void } {
  const ended: SessionInfo[] = [];
  let wake: (() => void) | null = null;
  const onEnd = (message: unknown): void => {
    ended.push({ ...(message as SessionInfo) });
    wake?.();
  };
  channels.sessionEnd.subscribe(onEnd);
  return {
    ended,
    async next(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (ended.length === 0 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
      assert.ok(ended.length > 0, `no session ended within ${timeoutMs} ms`);
      return ended.shift()!;
    },
    stop: () => channels.sessionEnd.unsubscribe(onEnd),
  };
}

test('a connect error other than refusal (ENETUNREACH) is UpstreamUnreachable, at once', async () => {
  // 127.255.255.255 is loopback's broadcast address: the kernel refuses a TCP connect to it with
  // ENETUNREACH before any packet is built.
  const proxy = await startProxy(allow('127.255.255.255/32'), { config: { connectTimeoutMs: 60_000 } });
  const ends = watchEnds();
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, 80, '127.255.255.255', 'u'));
    assert.deepEqual([...(await raw.read(8, 10_000))], [0, 91, 0, 0, 0, 0, 0, 0]);
    const session = await ends.next(10_000);
    assert.equal(session.reason, 'UpstreamUnreachable', 'a network error is not reported as a refusal');
    raw.socket.destroy();
  } finally {
    ends.stop();
    await proxy.close();
  }
});

test('the destination half-closes first: its FIN reaches the client, and the client still sends', async () => {
  let destination!: net.Socket;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    destination = socket;
    socket.end('bye'); // done talking, still listening
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const destPort = (server.address() as net.AddressInfo).port;
  const proxy = await startProxy(allow('127.0.0.1/32'));
  const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
  client.on('error', () => {});
  try {
    await once(client, 'connect');
    let fromProxy = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => (fromProxy = Buffer.concat([fromProxy, chunk])));
    const clientGotFin = once(client, 'end');
    client.write(socks4Request(1, destPort, '127.0.0.1', 'h'));
    await clientGotFin;
    assert.equal(fromProxy[1], 90);
    assert.equal(fromProxy.subarray(8).toString(), 'bye', "the destination's bytes, then its FIN");
    // The client's later bytes still reach the destination, then the client's own FIN.
    let atDestination = '';
    destination.on('data', (chunk: Buffer) => (atDestination += chunk.toString()));
    const destinationGotFin = once(destination, 'end');
    client.end('after your FIN');
    await destinationGotFin;
    assert.equal(atDestination, 'after your FIN');
  } finally {
    client.destroy();
    await proxy.close();
    server.close();
  }
});

test('dialled from a chosen source address, the destination sees that source', async () => {
  // No product caller passes a source address yet (`--bind-address` is for BIND listeners); the
  // session's dial hook is given connectUpstream with one, as a caller that wants it would.
  const seen: string[] = [];
  const server = net.createServer((socket) => {
    seen.push(socket.remoteAddress ?? '');
    socket.end('hi');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const destPort = (server.address() as net.AddressInfo).port;
  const proxy = await startProxy(allow('127.0.0.1/32'), {
    dial: (ip, port, timeoutMs) => connectUpstream(ip, port, timeoutMs, '127.0.0.9'),
  });
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, destPort, '127.0.0.1', 's'));
    assert.equal((await raw.read(8))[1], 90);
    assert.equal((await raw.read(2)).toString(), 'hi');
    assert.deepEqual(seen, ['127.0.0.9']);
    raw.socket.destroy();
  } finally {
    await proxy.close();
    server.close();
  }
});

/** Timers alive in this process: a settled dial must not keep its deadline timer. */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** SYN-SENT sockets to 127.0.0.1:port, as the kernel lists them. */
function synSent(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'syn-sent', 'dst', `127.0.0.1:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim() !== '').length;
}

/**
 * A listener whose process never accepts (its event loop is blocked) with a backlog of 1, its
 * accept queue filled: the kernel then drops further SYNs, so a connect to it stays pending.
 */
async function unacceptingListener(): Promise<{ port: number; close(): void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         console.log(s.address().port);
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
       });`,
    ],
    { env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  const close = (): void => {
    for (const filler of fillers) filler.destroy();
    child.kill();
  };
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    for (let i = 0; i < 2; i++) {
      const filler = net.connect({ host: '127.0.0.1', port });
      filler.on('error', () => {});
      fillers.push(filler);
      await once(filler, 'connect');
    }
    return { port, close };
  } catch (error) {
    close();
    throw error;
  }
}

/** Bounded poll on the kernel's own view: waits until `count` connects to `port` are pending. */
async function untilSynSent(port: number, count: number): Promise<number> {
  for (let i = 0; i < 200 && synSent(port) !== count; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  return synSent(port);
}

test('a client that hangs up during a pending connect aborts it: ClientAborted, no socket left', async () => {
  const listener = await unacceptingListener();
  const proxy = await startProxy(allow('127.0.0.1/32'), { config: { connectTimeoutMs: 60_000 } });
  const phases: PhaseEvent[] = [];
  const onPhase = (message: unknown): void => void phases.push({ ...(message as PhaseEvent) });
  channels.sessionPhase.subscribe(onPhase);
  const ends = watchEnds();
  try {
    const before = timers(); // before the session's own handshake timer
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, listener.port, '127.0.0.1', 'gone'));
    assert.equal(await untilSynSent(listener.port, 1), 1, "the proxy's connect never became pending");
    raw.socket.destroy();
    const session = await ends.next(10_000);
    assert.equal(session.reason, 'ClientAborted');
    assert.equal(session.replyCode, null, 'nothing was granted');
    // The connect settles when the client leaves, not at the 60 s deadline, and says why.
    for (let i = 0; i < 200 && !phases.some((p) => p.phase === 'connect'); i++)
      await new Promise((resolve) => setTimeout(resolve, 25));
    const connect = phases.find((p) => p.phase === 'connect');
    assert.ok(connect, 'the connect phase did not end when the client left');
    assert.equal(connect.error, 'ClientAborted');
    assert.equal(await untilSynSent(listener.port, 0), 0, 'the upstream socket was left connecting');
    assert.ok(timers() <= before, 'the abandoned dial kept its 60 s deadline timer');
  } finally {
    channels.sessionPhase.unsubscribe(onPhase);
    ends.stop();
    listener.close();
    await proxy.close();
  }
});

test('a connect that outlives its deadline gets 91 with UpstreamTimeout, and its socket is closed', async () => {
  // timeouts.test.ts measures the deadline in a namespace (a child process); this one runs in the
  // test's own process, and checks that the half-open socket does not outlive it.
  const listener = await unacceptingListener();
  const proxy = await startProxy(allow('127.0.0.1/32'), { config: { connectTimeoutMs: 300 } });
  const ends = watchEnds();
  const phases: PhaseEvent[] = [];
  const onPhase = (message: unknown): void => void phases.push({ ...(message as PhaseEvent) });
  channels.sessionPhase.subscribe(onPhase);
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, listener.port, '127.0.0.1', 'slow'));
    assert.deepEqual([...(await raw.read(8, 10_000))], [0, 91, 0, 0, 0, 0, 0, 0]);
    assert.equal((await ends.next(10_000)).reason, 'UpstreamTimeout');
    // The kernel would retry the SYN for two minutes: the proxy must have closed the socket.
    assert.equal(await untilSynSent(listener.port, 0), 0, 'the timed-out connect was left in SYN-SENT');
    raw.socket.destroy();
    // connectUpstream's own contract, for callers other than the session (which also destroys it):
    // at the deadline the socket is closed by the dial itself.
    const dial = connectUpstream('127.0.0.1', listener.port, 200);
    await assert.rejects(dial.connected, { reason: 'UpstreamTimeout' });
    assert.equal(dial.socket.destroyed, true, 'the dial left its socket open at the deadline');
    // One connect phase, for the deadline: the session's dial settling when its socket closed
    // (long before this direct dial's 200 ms deadline) added none.
    assert.deepEqual(
      phases.map((p) => [p.phase, p.error]),
      [['connect', 'UpstreamTimeout']],
    );
  } finally {
    channels.sessionPhase.unsubscribe(onPhase);
    ends.stop();
    listener.close();
    await proxy.close();
  }
});

test('a connected session outlives the connect deadline: the timer is cleared on connect', async () => {
  const connectTimeoutMs = 200;
  const echo = net.createServer((socket) => socket.pipe(socket));
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const echoPort = (echo.address() as net.AddressInfo).port;
  const proxy = await startProxy(allow('127.0.0.1/32'), { config: { connectTimeoutMs } });
  const ends = watchEnds();
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, echoPort, '127.0.0.1', 'long'));
    assert.equal((await raw.read(8))[1], 90);
    // Pings until three deadlines have passed since the grant (a bounded count): every one answered.
    const granted = performance.now();
    for (let i = 0; i < 500 && performance.now() - granted < 3 * connectTimeoutMs; i++) {
      raw.socket.write('p');
      assert.equal(
        (await raw.read(1, 10_000)).toString(),
        'p',
        `no echo ${Math.round(performance.now() - granted)} ms after the grant`,
      );
      await new Promise((resolve) => setTimeout(resolve, connectTimeoutMs / 4));
    }
    assert.ok(performance.now() - granted >= 3 * connectTimeoutMs, 'the pings stopped before the deadline passed');
    assert.equal(ends.ended.length, 0, 'the session ended while relaying');
    raw.socket.destroy();
  } finally {
    ends.stop();
    await proxy.close();
    echo.close();
  }
});
