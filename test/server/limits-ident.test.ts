// Limits and IDENT enforced by the running proxy: a refused session gets 91, and only ident
// outcomes ever produce 92 or 93.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
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

test('bandwidth: bytes per second are held to the limit', async () => {
  const proxy = await startProxy(limited('{bandwidth: {bytesPerSecond: 20000, key: Session}}'));
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
    assert.equal(reply[1], 90);
    const started = Date.now();
    // 60 000 bytes out and back through a 20 000 B/s bucket (1 s of burst): ≥ ~1 s, not instant.
    raw.socket.write(Buffer.alloc(60_000, 1));
    const back = await raw.read(60_000, 15_000);
    assert.equal(back.length, 60_000);
    assert.ok(Date.now() - started >= 900, `took ${Date.now() - started} ms`);
    raw.socket.destroy();
  } finally {
    await proxy.close();
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
  await withIdentd((c, s) => `${c} , ${s} : USERID : UNIX : alice`, async (identd) => {
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
  });
});

test('ident Required: identd answers another user → 93', async () => {
  await withIdentd((c, s) => `${c} , ${s} : USERID : UNIX : mallory`, async (identd) => {
    const proxy = await startProxy(identPolicy('Required'), { config: { identPort: identd.port } });
    try {
      const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
      assert.deepEqual([...reply], [0, 93, 0, 0, 0, 0, 0, 0]);
      await raw.closed;
    } finally {
      await proxy.close();
    }
  });
});

test('ident Required: identd unreachable → 92; Optional: unreachable → 90', async () => {
  const gone = await startEchoServer();
  await gone.close(); // a port with nobody listening
  for (const [mode, code] of [['Required', 92], ['Optional', 90]] as const) {
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
  const proxy = await startProxy(identPolicy('Required'), { config: { identPort: identd.port, identTimeoutMs: 10_000 } });
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'alice'));
    for (let i = 0; i < 200 && identd.queries.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
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
