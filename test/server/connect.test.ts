// CONNECT and SOCKS4a through the real proxy with real clients: curl (--socks4, --socks4a) and
// raw sockets for what curl cannot send.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import {
  connectRaw,
  exchange,
  socks4Request,
  startEchoServer,
  startHttpServer,
  startProxy,
  type Closable,
  type TestProxy,
} from '../helpers/servers.ts';

const run = promisify(execFile);

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: e2e, namespace: test}
spec:
  priority: 10
  rules:
    - name: no-private-port
      action: Deny
      to: {ports: ["9"]}
    - name: loopback
      action: Allow
      commands: [Connect]
      to: {cidrs: ["127.0.0.0/8"]}
    - name: anywhere-else
      action: Allow
      commands: [Connect]
      from: {userids: ["wide-*"]}
      to: {cidrs: ["0.0.0.0/0"]}
`;

let web: Closable;
let echo: Closable;
let proxy: TestProxy;

before(async () => {
  web = await startHttpServer('hello through socks4\n');
  echo = await startEchoServer();
  proxy = await startProxy(policy);
});

after(async () => {
  await proxy.close();
  await web.close();
  await echo.close();
});

async function curl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('curl', ['--silent', '--show-error', '--max-time', '10', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('curl --socks4 reaches an allowed loopback HTTP server', async () => {
  const result = await curl('--socks4', `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${web.port}/a`);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'hello through socks4\n');
});

test('curl --socks4a lets the proxy resolve the name', async () => {
  const result = await curl('--socks4a', `127.0.0.1:${proxy.port}`, `http://localhost:${web.port}/b`);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'hello through socks4\n');
});

/** Runs `body`; returns the sessions to `destPort` that ended meanwhile (from session:end). */
async function sessionsEndedDuring(destPort: number, body: () => Promise<void>, count: number): Promise<SessionInfo[]> {
  const ended: SessionInfo[] = [];
  const onEnd = (message: unknown): void => {
    const s = message as SessionInfo;
    if (s.destPort === destPort) ended.push({ ...s });
  };
  channels.sessionEnd.subscribe(onEnd);
  try {
    await body();
    for (let i = 0; i < 200 && ended.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    return ended;
  } finally {
    channels.sessionEnd.unsubscribe(onEnd);
  }
}

test('a denied destination gets 91 for the Deny rule, not for an upstream failure', async () => {
  // Port 9 has no listener either, so a 91 alone would also come from "connection refused": the
  // session's reason and rule tell the policy's refusal apart, and nothing is dialled.
  const [session] = await sessionsEndedDuring(
    9,
    async () => {
      const result = await curl('--socks4', `127.0.0.1:${proxy.port}`, `http://127.0.0.1:9/`);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /91|rejected/i);
    },
    1,
  );
  assert.ok(session, 'the refused session ended');
  assert.deepEqual([session.replyCode, session.reason, session.ruleId], [91, 'RuleDenied', 'test/e2e/no-private-port']);
  // The same destination when no rule denies it: 91 too, but from the upstream.
  const [upstream] = await sessionsEndedDuring(
    9,
    async () => {
      proxy.setPolicy(policy.replace('ports: ["9"]', 'ports: ["7"]'));
      try {
        const { reply, raw } = await exchange(proxy.port, socks4Request(1, 9, '127.0.0.1'));
        assert.equal(reply[1], 91);
        await raw.closed;
      } finally {
        proxy.setPolicy(policy);
      }
    },
    1,
  );
  assert.deepEqual([upstream?.reason, upstream?.ruleId], ['UpstreamRefused', 'test/e2e/loopback']);
});

test('after a refusal, bytes the client still sends meet a lingering reader, not a reset', async () => {
  // SOCKS4: the server closes right after a failure reply. Closing a socket with bytes arriving
  // makes the kernel answer them with RST, and a reset can destroy the 8-byte reply before the
  // client reads it; so the proxy sends FIN and reads (and drops) what still comes, briefly.
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
  const errors: string[] = [];
  socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  const ended = once(socket, 'end');
  socket.write(socks4Request(1, 9, '127.0.0.1', 'pipelining'));
  await ended; // the proxy's FIN, after its reply
  assert.deepEqual([...received], [0, 91, 0, 0, 0, 0, 0, 0]);
  // A client that pipelined its first payload goes on sending after the refusal arrived.
  for (let i = 0; i < 4; i++) socket.write(Buffer.alloc(16 * 1024, 0x61));
  socket.end();
  const [hadError] = (await once(socket, 'close')) as [boolean];
  assert.deepEqual({ hadError, errors }, { hadError: false, errors: [] });
});

test('the SSRF guard refuses loopback under 0.0.0.0/0 (rule must name the range)', async () => {
  // A policy whose only allow is 0.0.0.0/0: loopback stays closed.
  const guarded = await startProxy(`
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: wide}
spec:
  rules:
    - {name: all, action: Allow, to: {cidrs: ["0.0.0.0/0"]}}
`);
  try {
    const { reply, raw } = await exchange(guarded.port, socks4Request(1, web.port, '127.0.0.1'));
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    await raw.closed;
  } finally {
    await guarded.close();
  }
});

test('granted reply is 8 bytes with VN 0 and CD 90, then bytes flow both ways', async () => {
  const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
  assert.equal(reply.length, 8);
  assert.equal(reply[0], 0);
  assert.equal(reply[1], 90);
  raw.socket.write('ping');
  assert.equal((await raw.read(4)).toString(), 'ping');
  raw.socket.end();
  await raw.closed;
});

test('bytes sent in the same packet as the request are relayed, not dropped', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(Buffer.concat([socks4Request(1, echo.port, '127.0.0.1', 'bob'), Buffer.from('early-bytes')]));
  const reply = await raw.read(8);
  assert.equal(reply[1], 90);
  assert.equal((await raw.read(11)).toString(), 'early-bytes');
  raw.socket.destroy();
});

test('a request arriving one byte at a time is served', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.setNoDelay(true);
  for (const byte of socks4Request(1, echo.port, '127.0.0.1', 'slow')) {
    raw.socket.write(Buffer.from([byte]));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  assert.equal((await raw.read(8))[1], 90);
  raw.socket.destroy();
});

test('half-close: the client FIN reaches upstream and the answer still comes back', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(socks4Request(1, web.port, '127.0.0.1'));
  assert.equal((await raw.read(8))[1], 90);
  raw.socket.end('GET /half HTTP/1.0\r\nHost: x\r\n\r\n');
  const response = (await raw.read(1_000, 3000)).toString();
  assert.match(response, /^HTTP\/1\.[01] 200/);
  assert.match(response, /hello through socks4/);
  await raw.closed;
});

const malformed: Array<[string, Buffer, number[] | 'close']> = [
  ['VN 5 is not SOCKS4: bare close', Buffer.from('0501005000000000', 'hex'), 'close'],
  ['CD 3 is unknown', Buffer.from('040300507f00000100', 'hex'), [0, 91, 0, 0, 0, 0, 0, 0]],
  ['DSTPORT 0', Buffer.from('040100007f00000100', 'hex'), [0, 91, 0, 0, 0, 0, 0, 0]],
  [
    'USERID of 256 bytes',
    Buffer.concat([Buffer.from('040100507f000001', 'hex'), Buffer.alloc(256, 0x61), Buffer.from([0])]),
    [0, 91, 0, 0, 0, 0, 0, 0],
  ],
  ['empty SOCKS4a name', Buffer.from('04010050000000010000', 'hex'), [0, 91, 0, 0, 0, 0, 0, 0]],
  [
    'DSTIP 0.0.0.0 is an address, not 4a, and guarded',
    Buffer.from('040100500000000000', 'hex'),
    [0, 91, 0, 0, 0, 0, 0, 0],
  ],
];

for (const [name, request, expected] of malformed) {
  test(`malformed: ${name}`, async () => {
    const { reply, raw } = await exchange(proxy.port, request);
    if (expected === 'close') assert.equal(reply.length, 0);
    else assert.deepEqual([...reply], expected);
    await raw.closed; // the server closes at once after a failure reply
  });
}

test('handshake timeout: a silent client is closed', async () => {
  const quick = await startProxy(policy, { config: { handshakeTimeoutMs: 150 } });
  try {
    const raw = await connectRaw(quick.port);
    raw.socket.write(Buffer.from([4, 1])); // starts a request and stops
    const reply = await raw.read(8, 3000);
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    await raw.closed;
  } finally {
    await quick.close();
  }
});

test('upstream refused: 91 and close', async () => {
  const closedPort = await (async () => {
    const gone = await startEchoServer();
    await gone.close();
    return gone.port;
  })();
  const { reply, raw } = await exchange(proxy.port, socks4Request(1, closedPort, '127.0.0.1'));
  assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
  await raw.closed;
});
