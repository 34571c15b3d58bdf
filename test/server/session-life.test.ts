// How a session ends, for what connect.test.ts and upstream.test.ts leave out: a client's FIN
// before its grant (a half-close when it sent payload with its request, a hang-up when it sent
// none), the refusal linger's end for a client that keeps its half open, a drain meeting a session
// mid-request and one relaying, and the closeCause each end records (the log line and metrics read
// it). In this process with real sockets; a dial hook holds the real upstream connect's result
// until the test opens it, so a session can be caught "connecting" without a timing guess.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { connectUpstream } from '../../src/server/upstream.ts';
import type { SessionEnv } from '../../src/server/session-env.ts';
import { channels, type PhaseEvent, type SessionInfo } from '../../src/telemetry/events.ts';
import { allowLoopbackPolicy, connectRaw, socks4Request, startEchoServer, startProxy } from '../helpers/servers.ts';

/** Every test ends within this, passing or failing: a mutant that stalls a close must not hang the file. */
const bounded = { timeout: 30_000 };

let echo: Awaited<ReturnType<typeof startEchoServer>>;
const ended: SessionInfo[] = [];
const onEnd = (message: unknown): void => void ended.push({ ...(message as SessionInfo) });

before(async () => {
  echo = await startEchoServer();
  channels.sessionEnd.subscribe(onEnd);
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  await echo.close();
});

/** The end event of the session whose client used local port `port` (bounded poll). */
async function endOf(port: number, timeoutMs = 5000): Promise<SessionInfo> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const found = ended.find((s) => s.clientPort === port);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the session of client port ${port} did not end within ${timeoutMs} ms`);
}

/** Bounded poll until `check()` holds; returns whether it did. */
async function until(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; !check() && Date.now() < deadline; )
    await new Promise((resolve) => setTimeout(resolve, 10));
  return check();
}

/**
 * A real dial whose outcome reaches the session only when the test calls open(): the session
 * stays "connecting" meanwhile. `dials` holds each dial's socket.
 */
function heldDial(): { dial: NonNullable<SessionEnv['dial']>; open(): void; dials: net.Socket[] } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const dials: net.Socket[] = [];
  return {
    dials,
    open,
    dial(ip, port, timeoutMs) {
      const dialled = connectUpstream(ip, port, timeoutMs);
      dials.push(dialled.socket);
      dialled.connected.catch(() => {}); // a client gone first rejects it before the gate opens
      return { socket: dialled.socket, connected: gate.then(() => dialled.connected) };
    },
  };
}

/** Whether the kernel has the proxy's end of the client's connection in CLOSE-WAIT (its FIN read). */
function finReceived(proxyPort: number, clientPort: number): boolean {
  const out = execFileSync(
    'ss',
    ['-Htn', 'state', 'close-wait', 'sport', `= :${proxyPort}`, 'dport', `= :${clientPort}`],
    { encoding: 'utf8' },
  );
  return out.trim() !== '';
}

test(
  'payload with the request, more while connecting, then a FIN before the grant: all relayed, a half-close',
  bounded,
  async () => {
    const held = heldDial();
    const proxy = await startProxy(allowLoopbackPolicy, { dial: held.dial });
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    client.on('error', () => {});
    try {
      await once(client, 'connect');
      const port = client.localPort!;
      let received = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
      const clientEnded = once(client, 'end');
      client.write(Buffer.concat([socks4Request(1, echo.port, '127.0.0.1', 'fin'), Buffer.from('last')]));
      assert.ok(await until(() => held.dials.length === 1), 'the session never dialled');
      // More payload while the connect is pending (the session holds it unread), then the FIN.
      client.end(' words');
      // The FIN has reached the proxy while its connect is held; one more turn lets the proxy read it.
      assert.ok(await until(() => finReceived(proxy.port, port)), 'the FIN never reached the proxy');
      await new Promise((resolve) => setTimeout(resolve, 20));
      held.open();
      await clientEnded; // the echo server answers the FIN with its own, after the bytes
      assert.equal(received[1], 90, 'granted');
      assert.equal(received.subarray(8).toString(), 'last words', 'the payload went out and came back');
      const session = await endOf(port);
      assert.deepEqual([session.replyCode, session.reason, session.closeCause], [90, null, 'closed']);
      // The bytes sent with the request are counted as the client's, like the relay's own.
      assert.deepEqual([session.bytesFromClient, session.bytesToClient], [10, 10]);
    } finally {
      client.destroy();
      held.open();
      await proxy.close();
    }
  },
);

test(
  'a FIN before the grant with no payload is a hang-up: ClientAborted at once, the dial abandoned',
  bounded,
  async () => {
    const held = heldDial();
    const proxy = await startProxy(allowLoopbackPolicy, { dial: held.dial });
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    client.on('error', () => {});
    try {
      await once(client, 'connect');
      const port = client.localPort!;
      client.end(socks4Request(1, echo.port, '127.0.0.1', 'gone'));
      // The connect is held for good: only the client's FIN can end this session.
      const session = await endOf(port);
      assert.deepEqual(
        [session.replyCode, session.reason, session.closeCause],
        [null, 'ClientAborted', 'ClientAborted'],
      );
      assert.equal(held.dials.length, 1);
      assert.equal(held.dials[0]!.destroyed, true, 'the pending upstream socket was left open');
    } finally {
      client.destroy();
      held.open();
      await proxy.close();
    }
  },
);

test(
  'the refusal linger ends: a refused client that keeps its half open is closed after it, not before',
  bounded,
  async () => {
    const dials: string[] = [];
    const proxy = await startProxy(allowLoopbackPolicy, {
      dial: (ip, destPort, timeoutMs) => {
        dials.push(`${ip}:${destPort}`);
        return connectUpstream(ip, destPort, timeoutMs);
      },
    });
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    const errors: string[] = [];
    client.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    try {
      await once(client, 'connect');
      const port = client.localPort!;
      let received = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
      const finAt = once(client, 'end').then(() => performance.now());
      client.write(socks4Request(1, 0, '127.0.0.1', 'refused')); // DSTPORT 0: refused as it is read
      const fin = await finAt;
      assert.deepEqual([...received], [0, 91, 0, 0, 0, 0, 0, 0], 'the reply, then the FIN at once');
      const session = await endOf(port);
      assert.deepEqual([session.reason, session.closeCause], ['ZeroPort', 'ZeroPort']);
      // The client keeps sending on its open half, first a request the policy allows: a refused
      // session is over, so it is read and dropped like any other byte, never served. Once the
      // proxy has closed its socket the kernel answers the next bytes with a reset.
      client.write(socks4Request(1, echo.port, '127.0.0.1', 'again'));
      let resetAt: number | null = null;
      for (let i = 0; i < 150 && resetAt === null; i++) {
        client.write('x');
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (errors.length > 0 || client.destroyed) resetAt = performance.now();
      }
      assert.ok(resetAt !== null, 'the lingering socket was never closed');
      assert.ok(resetAt - fin >= 1900, `reset ${Math.round(resetAt - fin)} ms after the FIN, inside the 2 s linger`);
      assert.deepEqual(dials, [], 'a request sent after the refusal was served');
    } finally {
      client.destroy();
      await proxy.close();
    }
  },
);

test(
  'a drain refuses a session still reading its request (91, Draining) and cuts a relaying one',
  bounded,
  async () => {
    const proxy = await startProxy(allowLoopbackPolicy);
    try {
      const relaying = await connectRaw(proxy.port);
      relaying.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'relay'));
      assert.equal((await relaying.read(8))[1], 90);
      assert.equal(proxy.server.pendingInProgress, 0, 'a relaying session still holds a pending slot');
      // Bulk data moves both sides to pooled reads (new Socket objects): the drain must cut those.
      const bulk = Buffer.alloc(512 * 1024, 0x62);
      relaying.socket.write(bulk);
      assert.equal((await relaying.read(bulk.length, 10_000)).length, bulk.length);
      const reading = await connectRaw(proxy.port);
      const [readingPort, relayingPort] = [reading.socket.localPort!, relaying.socket.localPort!];
      reading.socket.write(Buffer.from([4, 1, 0])); // a request begun, not finished
      assert.ok(await until(() => proxy.server.handshakesInProgress === 1), 'the reader never reached the proxy');
      await proxy.server.drain(50);
      assert.deepEqual([...(await reading.read(8))], [0, 91, 0, 0, 0, 0, 0, 0], 'the reader is told');
      await Promise.all([reading.closed, relaying.closed]);
      const refused = await endOf(readingPort);
      assert.deepEqual([refused.replyCode, refused.reason, refused.closeCause], [91, 'Draining', 'Draining']);
      // A granted session keeps no refusal reason; what cut it is its cause.
      const cut = await endOf(relayingPort);
      assert.deepEqual([cut.replyCode, cut.reason, cut.closeCause], [90, null, 'Draining']);
      assert.equal(cut.bytesFromClient, bulk.length);
      assert.equal((await relaying.read(1, 100)).length, 0, 'no refusal is sent after a grant');
    } finally {
      await proxy.close();
    }
  },
);

test(
  'a relayed client that resets: the session ends at once with closeCause error; its handshake time is kept',
  bounded,
  async () => {
    const proxy = await startProxy(allowLoopbackPolicy);
    try {
      const started = performance.now();
      const raw = await connectRaw(proxy.port);
      const port = raw.socket.localPort!;
      raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'reset'));
      assert.equal((await raw.read(8))[1], 90);
      const replied = performance.now() - started;
      raw.socket.resetAndDestroy();
      const session = await endOf(port);
      assert.deepEqual([session.replyCode, session.reason, session.closeCause], [90, null, 'error']);
      // Accept to reply, as the proxy measured it (logs and the span's reply event): within what the client saw.
      assert.ok(
        session.handshakeMs !== null && session.handshakeMs >= 0 && session.handshakeMs <= replied,
        `handshakeMs ${session.handshakeMs}, the client waited ${replied} ms`,
      );
    } finally {
      await proxy.close();
    }
  },
);

test('a client gone while its connect completes is never granted nor established', bounded, async () => {
  const held = heldDial();
  const proxy = await startProxy(allowLoopbackPolicy, { dial: held.dial });
  const established: string[] = [];
  const onEstablished = (message: unknown): void => void established.push((message as SessionInfo).id);
  channels.sessionEstablished.subscribe(onEstablished);
  const connectPhases: PhaseEvent[] = [];
  const onPhase = (message: unknown): void => {
    if ((message as PhaseEvent).phase === 'connect') connectPhases.push(message as PhaseEvent);
  };
  channels.sessionPhase.subscribe(onPhase);
  try {
    const raw = await connectRaw(proxy.port);
    const port = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'late'));
    assert.ok(await until(() => held.dials.length === 1), 'the session never dialled');
    // The real connect to the echo server has succeeded; the session learns it only at open().
    assert.ok(await until(() => echo.connections.length > 0), 'the destination never saw the connect');
    raw.socket.destroy();
    const session = await endOf(port);
    assert.equal(session.reason, 'ClientAborted');
    held.open();
    // The session ends its connect phase, successful, and decides in the same turn what follows.
    assert.ok(await until(() => connectPhases.length === 1), 'the held connect never settled');
    assert.equal(connectPhases[0]!.error, null);
    assert.deepEqual([session.replyCode, established], [null, []]);
    assert.equal(held.dials[0]!.destroyed, true, 'the upstream socket outlived its session');
  } finally {
    channels.sessionEstablished.unsubscribe(onEstablished);
    channels.sessionPhase.unsubscribe(onPhase);
    held.open();
    await proxy.close();
  }
});

test(
  'a client that resets while its connect is pending: ClientAborted, and the proxy goes on serving',
  bounded,
  async () => {
    const held = heldDial();
    const proxy = await startProxy(allowLoopbackPolicy, { dial: held.dial });
    try {
      const raw = await connectRaw(proxy.port);
      const port = raw.socket.localPort!;
      raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'rst'));
      assert.ok(await until(() => held.dials.length === 1), 'the session never dialled');
      raw.socket.resetAndDestroy(); // an error on the proxy's socket, not a FIN
      assert.equal((await endOf(port)).reason, 'ClientAborted');
      held.open();
      const next = await connectRaw(proxy.port);
      next.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'next'));
      assert.equal((await next.read(8))[1], 90, 'the next client is served');
      next.socket.destroy();
    } finally {
      held.open();
      await proxy.close();
    }
  },
);

test(
  'request, payload and FIN in one packet: the FIN is read while connecting, and still relayed',
  bounded,
  async () => {
    const held = heldDial();
    const proxy = await startProxy(allowLoopbackPolicy, { dial: held.dial });
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    client.on('error', () => {});
    try {
      await once(client, 'connect');
      const port = client.localPort!;
      let received = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
      const clientEnded = once(client, 'end');
      client.end(Buffer.concat([socks4Request(1, echo.port, '127.0.0.1', 'fin'), Buffer.from('last words')]));
      assert.ok(await until(() => held.dials.length === 1), 'the session never dialled');
      // Nothing is left unread, so the proxy sees the FIN ('end') while its connect is held.
      assert.ok(await until(() => finReceived(proxy.port, port)), 'the FIN never reached the proxy');
      await new Promise((resolve) => setTimeout(resolve, 20)); // one more turn: the proxy reads it
      held.open();
      await clientEnded;
      assert.equal(received[1], 90, 'granted, not ended as a hang-up');
      assert.equal(received.subarray(8).toString(), 'last words');
      const session = await endOf(port);
      assert.deepEqual([session.reason, session.closeCause], [null, 'closed']);
    } finally {
      client.destroy();
      held.open();
      await proxy.close();
    }
  },
);

test(
  'refused after its request was read, a client may still upload: the linger reads it all, no reset',
  bounded,
  async () => {
    const proxy = await startProxy(allowLoopbackPolicy);
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    client.on('error', () => {});
    try {
      await once(client, 'connect');
      const finAt = once(client, 'end').then(() => performance.now());
      client.resume();
      client.write(socks4Request(1, echo.port, '127.0.0.2', 'pipelined')); // refused by policy
      const fin = await finAt;
      // More than the kernel buffers on the way hold: it completes only if the proxy reads on.
      const written = await new Promise<string>((resolve) =>
        client.write(Buffer.alloc(8 << 20, 0x61), (error) =>
          resolve(error ? ((error as NodeJS.ErrnoException).code ?? 'error') : 'ok'),
        ),
      );
      assert.equal(written, 'ok');
      assert.ok(performance.now() - fin < 1900, 'the upload completed only when the linger ended');
    } finally {
      client.destroy();
      await proxy.close();
    }
  },
);
