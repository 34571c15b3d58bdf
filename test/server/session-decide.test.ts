// What a session decides from the server's shared state before any rule: no policy snapshot yet
// (a Redis-mode pod before its first rules arrive) refuses with NoSnapshot and dials nothing; once
// one is there the same client is served; and the pod map's namespace for the client is recorded
// on the session (logs and per-tenant metrics read it), null for an address no pod has. Then the
// limiter's failures: one that throws has admitted no one, and a lease granted after the client
// left goes straight back.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { Reason, SocksError } from '../../src/errors.ts';
import { createMemoryLimiter } from '../../src/limits/memory-limiter.ts';
import type { Admission, Limiter } from '../../src/limits/types.ts';
import { snapshotFromText } from '../../src/rules/file-source.ts';
import type { RuleSnapshot } from '../../src/rules/types.ts';
import { createProxyServer, type ProxyServer } from '../../src/server/proxy-server.ts';
import { defaultServerConfig } from '../../src/server/session-env.ts';
import { connectUpstream, resolveIPv4 } from '../../src/server/upstream.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import {
  allowLoopbackPolicy,
  connectRaw,
  exchange,
  socks4Request,
  startEchoServer,
  startProxy,
} from '../helpers/servers.ts';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let server: ProxyServer;
let port: number;
let snapshot: RuleSnapshot | null = null;
const dialled: string[] = [];
const limiter = createMemoryLimiter();
const ended: SessionInfo[] = [];
const onEnd = (message: unknown): void => void ended.push({ ...(message as SessionInfo) });

before(async () => {
  echo = await startEchoServer();
  server = createProxyServer({
    rules: () => snapshot,
    limiter,
    resolve: resolveIPv4,
    selfAddresses: new Set(),
    dial: (ip, destPort, timeoutMs) => {
      dialled.push(`${ip}:${destPort}`);
      return connectUpstream(ip, destPort, timeoutMs);
    },
    // Clients from 127.0.0.1 are pods of team-a; no other address is a pod.
    namespaceOf: (address) => (address === '127.0.0.1' ? 'team-a' : null),
    config: { ...defaultServerConfig, drainGraceMs: 0 },
  });
  port = (await server.listen('127.0.0.1', 0)).port;
  channels.sessionEnd.subscribe(onEnd);
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  await server.drain(0);
  await limiter.close();
  await echo.close();
});

/** The end event of the session whose client used local port `clientPort` (bounded poll). */
async function endOf(clientPort: number): Promise<SessionInfo> {
  for (let i = 0; i < 500; i++) {
    const found = ended.find((s) => s.clientPort === clientPort);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the session of client port ${clientPort} did not end within 5 s`);
}

test('no policy snapshot yet: 91 with NoSnapshot and nothing dialled; served once one arrives', async () => {
  const refused = await exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'early'));
  assert.deepEqual([...refused.reply], [0, 91, 0, 0, 0, 0, 0, 0]);
  const clientPort = refused.raw.socket.localPort!;
  await refused.raw.closed;
  const session = await endOf(clientPort);
  assert.deepEqual([session.reason, session.snapshotVersion, session.ruleId], ['NoSnapshot', null, null]);
  assert.deepEqual(dialled, [], 'a session with no rules to decide by dialled');

  snapshot = snapshotFromText(allowLoopbackPolicy, 'v1');
  const served = await exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'later'));
  assert.equal(served.reply[1], 90);
  served.raw.socket.destroy();
  assert.deepEqual(dialled, [`127.0.0.1:${echo.port}`]);
});

test("the pod map's namespace for the client is the session's; an address that is no pod has none", async () => {
  snapshot = snapshotFromText(allowLoopbackPolicy, 'v1');
  for (const [source, namespace] of [
    ['127.0.0.1', 'team-a'],
    ['127.0.0.2', null],
  ] as const) {
    const client = net.connect({ host: '127.0.0.1', port, localAddress: source });
    client.on('error', () => {});
    await once(client, 'connect');
    const clientPort = client.localPort!;
    client.write(socks4Request(1, echo.port, '127.0.0.1', 'pod'));
    await once(client, 'data');
    client.destroy();
    const session = await endOf(clientPort);
    assert.deepEqual([session.clientAddress, session.namespace, session.replyCode], [source, namespace, 90]);
  }
});

const limitedPolicy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: p}
spec:
  rules:
    - {name: r, action: Allow, to: {cidrs: ["127.0.0.1/32"]}, limits: {concurrentSessions: {max: 5, key: UserID}}}
`;

test('a limiter that throws has admitted no one: 91 with LimiterUnavailable', async () => {
  const asked: string[] = [];
  const broken: Limiter = {
    admit: (request) => {
      asked.push(request.userId);
      throw new Error('limiter bug');
    },
    close: () => {},
  };
  const proxy = await startProxy(limitedPolicy, { limiter: broken });
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'carol'));
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    const clientPort = raw.socket.localPort!;
    await raw.closed;
    assert.equal((await endOf(clientPort)).reason, 'LimiterUnavailable');
    assert.deepEqual(asked, ['carol'], "the limiter is asked with the client's USERID");
  } finally {
    await proxy.close();
  }
});

test('a lease the limiter grants after the client left is handed straight back', async () => {
  let answer: ((admission: Admission) => void) | null = null;
  let released = 0;
  const remote: Limiter = {
    admit: () => new Promise<Admission>((resolve) => (answer = resolve)),
    close: () => {},
  };
  const proxy = await startProxy(limitedPolicy, { limiter: remote, config: { limitsTimeoutMs: 60_000 } });
  try {
    const raw = await connectRaw(proxy.port);
    const clientPort = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'dave'));
    for (let i = 0; i < 500 && answer === null; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(answer !== null, 'the limiter was never asked');
    raw.socket.destroy(); // gone while the (Redis) limiter decides
    assert.equal((await endOf(clientPort)).reason, 'ClientAborted');
    answer!({ ok: true, lease: { release: () => void released++, bandwidth: null } });
    for (let i = 0; i < 500 && released === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(released, 1, "the late lease holds a slot of the client's for good");
  } finally {
    await proxy.close();
  }
});

test('a bug that throws a non-Error is InternalError, kept as an Error for the log line', async () => {
  const proxy = await startProxy(allowLoopbackPolicy, {
    dial: () => {
      throw 'dial bug: a string thrown'; // a thrown non-Error is the case under test
    },
  });
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'bug'));
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    const clientPort = raw.socket.localPort!;
    await raw.closed;
    const session = await endOf(clientPort);
    assert.equal(session.reason, 'InternalError');
    assert.ok(session.error instanceof Error, `the log gets ${typeof session.error}, not an Error`);
    assert.equal(session.error.message, 'dial bug: a string thrown');
  } finally {
    await proxy.close();
  }
});

/** A remote-style limiter: admits everyone, answering `delayMs` later; counts lease releases. */
function asyncLimiter(delayMs: number): { limiter: Limiter; released: () => number } {
  let released = 0;
  return {
    released: () => released,
    limiter: {
      admit: () =>
        new Promise<Admission>((resolve) =>
          setTimeout(() => resolve({ ok: true, lease: { release: () => void released++, bandwidth: null } }), delayMs),
        ),
      close: () => {},
    },
  };
}

test('--limits-timeout 0 is no deadline: a limiter answering later still admits', async () => {
  const { limiter } = asyncLimiter(100); // a deadline of 0 ms would have refused it long before
  const proxy = await startProxy(limitedPolicy, { limiter, config: { limitsTimeoutMs: 0 } });
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'erin'));
    assert.equal(reply[1], 90);
    raw.socket.destroy();
  } finally {
    await proxy.close();
  }
});

test("an admitted session keeps its lease past the limits deadline; it goes back once, at the session's end", async () => {
  const limitsTimeoutMs = 150;
  const { limiter, released } = asyncLimiter(0);
  const proxy = await startProxy(limitedPolicy, { limiter, config: { limitsTimeoutMs } });
  try {
    const raw = await connectRaw(proxy.port);
    const clientPort = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'frank'));
    assert.equal((await raw.read(8))[1], 90);
    // Echoed pings until three deadlines have passed since the grant (a bounded count).
    const granted = performance.now();
    for (let i = 0; i < 500 && performance.now() - granted < 3 * limitsTimeoutMs; i++) {
      raw.socket.write('p');
      assert.equal((await raw.read(1)).toString(), 'p');
      await new Promise((resolve) => setTimeout(resolve, limitsTimeoutMs / 4));
    }
    assert.equal(released(), 0, "the limits deadline's timer gave back the lease of a running session");
    raw.socket.destroy();
    await endOf(clientPort);
    assert.equal(released(), 1);
  } finally {
    await proxy.close();
  }
});

test('a BIND whose listener cannot be opened is BindFailed, a known failure: no error for the log', async () => {
  // 192.0.2.1 (TEST-NET-1) is on no interface here: listen() fails with EADDRNOTAVAIL, no packet sent.
  const proxy = await startProxy(allowLoopbackPolicy, { config: { bindAddress: '192.0.2.1' } });
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(2, 4000, '127.0.0.1', 'binder'));
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    const clientPort = raw.socket.localPort!;
    await raw.closed;
    const session = await endOf(clientPort);
    assert.deepEqual([session.reason, session.error], ['BindFailed', null]);
  } finally {
    await proxy.close();
  }
});

/** A SOCKS4a name through a resolver the test controls: how the session treats its answers. */
test('SOCKS4a through the resolver: overload is told apart, other failures are DnsFailed, a client gone cancels', async () => {
  const asked: Array<{ host: string; source: string | undefined; signal: AbortSignal | undefined }> = [];
  let answer: ((ip: string) => void) | null = null;
  const proxy = await startProxy(
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: p}
spec:
  rules:
    - {name: names, action: Allow, to: {hosts: ["*.test"]}}
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`,
    {
      resolve: (host, options) => {
        asked.push({ host, source: options?.source, signal: options?.signal });
        if (host === 'busy.test') return Promise.reject(new SocksError(Reason.DnsOverloaded, 'too many'));
        if (host === 'odd.test') return Promise.reject(new SocksError(Reason.UpstreamRefused, 'not a DNS reason'));
        if (host === 'broken.test') return Promise.reject(new Error('resolver bug'));
        return new Promise<string>((resolve) => (answer = resolve)); // slow.test: answered by the test
      },
    },
  );
  try {
    for (const [host, reason] of [
      ['busy.test', 'DnsOverloaded'],
      ['odd.test', 'DnsFailed'],
      ['broken.test', 'DnsFailed'],
    ] as const) {
      const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '', 'u', host));
      assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0], host);
      const clientPort = raw.socket.localPort!;
      await raw.closed;
      assert.equal((await endOf(clientPort)).reason, reason, host);
    }
    assert.deepEqual(
      asked.map((a) => [a.host, a.source]),
      [
        ['busy.test', '127.0.0.1'],
        ['odd.test', '127.0.0.1'],
        ['broken.test', '127.0.0.1'],
      ],
      "the resolver's per-source caps are told the client",
    );
    // A client that leaves while its name resolves: its query is cancelled.
    const raw = await connectRaw(proxy.port);
    const clientPort = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, echo.port, '', 'u', 'slow.test'));
    for (let i = 0; i < 500 && answer === null; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(answer !== null, 'the name was never resolved');
    const { signal } = asked.at(-1)!;
    raw.socket.destroy();
    assert.equal((await endOf(clientPort)).reason, 'ClientAborted');
    assert.equal(signal?.aborted, true, "the client's end did not cancel its query");
    answer!('127.0.0.1'); // too late: the session is over
  } finally {
    await proxy.close();
  }
});
