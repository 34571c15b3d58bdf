// Limits and IDENT enforced by the running proxy: a refused session gets 91, and only ident
// outcomes ever produce 92 or 93.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { connectRaw, exchange, socks4Request, startEchoServer, startProxy, type Closable } from '../helpers/servers.ts';
import { SILENT, startIdentd, type Identd } from '../helpers/identd.ts';

let echo: Closable;
before(async () => {
  echo = await startEchoServer();
});
after(() => echo.close());

const limited = (limits: string): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: limited}
spec:
  rules:
    - name: capped
      action: Allow
      to: {cidrs: ["127.0.0.1/32"]}
      limits: ${limits}
`;

test('concurrentSessions: the third session of a max of 2 gets 91; a release frees a slot', async () => {
  const proxy = await startProxy(limited('{concurrentSessions: {max: 2, key: Rule}}'));
  try {
    const open = [];
    for (let i = 0; i < 2; i++) {
      const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
      assert.equal(reply[1], 90);
      open.push(raw);
    }
    const third = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
    assert.deepEqual([...third.reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    await third.raw.closed;
    open[0]!.socket.destroy();
    await open[0]!.closed;
    // The proxy notices the close asynchronously; a bounded wait for the slot to come back.
    let reply: Buffer = Buffer.alloc(0);
    for (let attempt = 0; attempt < 50 && reply[1] !== 90; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const next = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
      reply = next.reply;
      if (reply[1] === 90) open.push(next.raw);
    }
    assert.equal(reply[1], 90);
    for (const raw of open) raw.socket.destroy();
  } finally {
    await proxy.close();
  }
});

test('connectionRate: a burst of 3 is admitted, the 4th at once is refused with 91', async () => {
  const proxy = await startProxy(limited('{connectionRate: {perSecond: 1, burst: 3, key: SourceIP}}'));
  try {
    const replies = [];
    for (let i = 0; i < 4; i++) {
      const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
      replies.push(reply[1]);
      raw.socket.destroy();
    }
    assert.deepEqual(replies, [90, 90, 90, 91]);
  } finally {
    await proxy.close();
  }
});

// Bandwidth, one direction at a time. A Session bucket holds one second's worth of bytes and is
// full at admission, so N bytes through a limit of R bytes/s cannot all arrive before (N − R) / R
// seconds after the request was sent: that is the lower bound, exact up to timer rounding (20 ms
// allowed). The upper bound is the same figure plus a stated tolerance for a noisy machine, 1.5 s:
// lateness does not accumulate, since the bucket credits the time that really passed, so only the
// last held chunk's timer and the handshake can add to it. A limit off by a factor of two in
// either direction misses one bound by more than a second.
const RATE = 100_000;
const BYTES = 4 * RATE;
const EXPECTED_MS = ((BYTES - RATE) / RATE) * 1000;
const TOLERANCE_MS = 1500;

function assertHeldToRate(elapsedMs: number, direction: string): void {
  const shown = `${direction}: ${BYTES} bytes at ${RATE} B/s took ${Math.round(elapsedMs)} ms (expected ${EXPECTED_MS} ms, +${TOLERANCE_MS} ms allowed)`;
  assert.ok(elapsedMs >= EXPECTED_MS - 20, shown);
  assert.ok(elapsedMs <= EXPECTED_MS + TOLERANCE_MS, shown);
}

/** An upstream that counts what it receives (upload) or sends `BYTES` at once (download). */
async function startBulkPeer(mode: 'sink' | 'source'): Promise<Closable & { received: Promise<number> }> {
  let done!: (at: number) => void;
  const received = new Promise<number>((resolve) => (done = resolve));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    if (mode === 'source') return void socket.write(Buffer.alloc(BYTES, 0x64));
    let count = 0;
    socket.on('data', (chunk: Buffer) => {
      count += chunk.length;
      if (count >= BYTES) done(performance.now());
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

test('bandwidth: an upload is held to bytesPerSecond, within the bounds the bucket sets', async () => {
  const sink = await startBulkPeer('sink');
  const proxy = await startProxy(limited(`{bandwidth: {bytesPerSecond: ${RATE}, key: Session}}`));
  try {
    const raw = await connectRaw(proxy.port);
    const started = performance.now();
    raw.socket.write(socks4Request(1, sink.port, '127.0.0.1'));
    assert.equal((await raw.read(8))[1], 90);
    raw.socket.write(Buffer.alloc(BYTES, 0x75));
    assertHeldToRate((await sink.received) - started, 'upload');
    raw.socket.destroy();
  } finally {
    await proxy.close();
    await sink.close();
  }
});

test('bandwidth: a download is held to bytesPerSecond, within the bounds the bucket sets', async () => {
  const source = await startBulkPeer('source');
  const proxy = await startProxy(limited(`{bandwidth: {bytesPerSecond: ${RATE}, key: Session}}`));
  try {
    const raw = await connectRaw(proxy.port);
    const started = performance.now();
    raw.socket.write(socks4Request(1, source.port, '127.0.0.1'));
    assert.equal((await raw.read(8))[1], 90);
    const body = await raw.read(BYTES, EXPECTED_MS + 10_000);
    const elapsed = performance.now() - started;
    assert.equal(body.length, BYTES);
    assertHeldToRate(elapsed, 'download');
    raw.socket.destroy();
  } finally {
    await proxy.close();
    await source.close();
  }
});

const identPolicy = (mode: string): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ident}
spec:
  rules:
    - name: ident-checked
      action: Allow
      to: {cidrs: ["127.0.0.1/32"]}
      ident: ${mode}
`;

async function withIdentd(
  respond: (clientPort: number, serverPort: number) => string | null,
  body: (identd: Identd) => Promise<void>,
): Promise<void> {
  const identd = await startIdentd({ respond });
  try {
    await body(identd);
  } finally {
    await identd.close();
  }
}

test('ident Required: identd confirms the USERID → 90, and the query names both ports', async () => {
  await withIdentd(
    (c, s) => `${c} , ${s} : USERID : UNIX : alice`,
    async (identd) => {
      const proxy = await startProxy(identPolicy('Required'), { config: { identPort: identd.port } });
      try {
        const raw = await connectRaw(proxy.port);
        raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'alice'));
        assert.equal((await raw.read(8))[1], 90);
        assert.equal(identd.queries[0]?.line, `${raw.socket.localPort} , ${proxy.port}\r\n`);
        raw.socket.destroy();
      } finally {
        await proxy.close();
      }
    },
  );
});

test('ident Required: identd answers another user → 93', async () => {
  await withIdentd(
    (c, s) => `${c} , ${s} : USERID : UNIX : mallory`,
    async (identd) => {
      const proxy = await startProxy(identPolicy('Required'), { config: { identPort: identd.port } });
      try {
        const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
        assert.deepEqual([...reply], [0, 93, 0, 0, 0, 0, 0, 0]);
        await raw.closed;
      } finally {
        await proxy.close();
      }
    },
  );
});

test('ident Required: identd unreachable → 92; Optional: unreachable → 90', async () => {
  const gone = await startEchoServer();
  await gone.close(); // a port with nobody listening
  for (const [mode, code] of [
    ['Required', 92],
    ['Optional', 90],
  ] as const) {
    const proxy = await startProxy(identPolicy(mode), { config: { identPort: gone.port } });
    try {
      const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
      assert.equal(reply[1], code, mode);
      raw.socket.destroy();
    } finally {
      await proxy.close();
    }
  }
});

test('a session ended during its ident query (drain deadline) ends the query, not the 10 s timeout', async () => {
  const identd = await startIdentd({ respond: () => SILENT });
  const proxy = await startProxy(identPolicy('Required'), {
    config: { identPort: identd.port, identTimeoutMs: 10_000 },
  });
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'alice'));
    for (let i = 0; i < 200 && identd.queries.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(identd.queries.length, 1);
    await proxy.server.drain(0); // the drain deadline closes every session still open
    const closed = await Promise.race([
      identd.queries[0]!.closed.then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000)),
    ]);
    assert.equal(closed, 'closed');
    raw.socket.destroy();
  } finally {
    await proxy.close();
    await identd.close();
  }
});
