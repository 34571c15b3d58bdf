// The span tree a real proxy produces for each way a session can go, read back from an in-memory
// exporter: names, kinds, parentage, timing, semantic-convention and socks4.* attributes, status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { Reason, SocksError } from '../../src/errors.ts';
import { channels } from '../../src/telemetry/events.ts';
import type { ServerConfig } from '../../src/server/session-env.ts';
import { connectRaw, exchange, socks4Request, startEchoServer, startProxy, type Closable } from '../helpers/servers.ts';
import { startIdentd } from '../helpers/identd.ts';
import { attrs, createSpanHarness, ms, type SpanHarness } from './span-harness.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: traced, namespace: proxies}
spec:
  rules:
    - name: no-discard
      action: Deny
      to: {ports: ["9"]}
    - name: local
      action: Allow
      to: {cidrs: ["127.0.0.1/32"]}
`;

const resolve = async (host: string): Promise<string> => {
  if (host === 'echo.test') return '127.0.0.1';
  throw new SocksError(Reason.DnsFailed, 'no such host');
};

let echo: Closable;
let closedPort: number;
before(async () => {
  echo = await startEchoServer();
  const gone = await startEchoServer();
  closedPort = gone.port;
  await gone.close();
});
after(() => echo.close());

async function withTraces(
  body: (h: SpanHarness, proxyPort: number) => Promise<void>,
  options: { policy?: string; config?: Partial<ServerConfig>; redactUserIds?: boolean } = {},
): Promise<void> {
  const harness = createSpanHarness({ redactUserIds: options.redactUserIds === true });
  const proxy = await startProxy(options.policy ?? policy, { resolve, config: { ...options.config } });
  try {
    await body(harness, proxy.port);
  } finally {
    await proxy.close();
    await harness.close();
  }
}

function assertNested(parent: ReadableSpan, child: ReadableSpan): void {
  assert.equal(child.spanContext().traceId, parent.spanContext().traceId);
  assert.equal(child.parentSpanContext?.spanId, parent.spanContext().spanId);
  assert.ok(ms(child.startTime) >= ms(parent.startTime), `${child.name} starts before its session`);
  assert.ok(ms(child.endTime) <= ms(parent.endTime), `${child.name} ends after its session`);
}

/**
 * `failure`: the proxy failed to do what policy allowed (ERROR); otherwise the refusal is the
 * client's or the policy's doing and the status stays unset (OpenTelemetry SERVER spans, like 4xx).
 */
function assertRefused(span: ReadableSpan, reason: string, reply: number | undefined, failure = false): void {
  assert.equal(span.status.code, failure ? SpanStatusCode.ERROR : SpanStatusCode.UNSET, `${reason}: status`);
  if (failure) assert.equal(span.status.message, reason);
  assert.equal(span.attributes['error.type'], reason);
  assert.equal(span.attributes['socks4.reason'], reason);
  assert.equal(span.attributes['socks4.reply.code'], reply);
}

/** Sends a CONNECT, echoes `payload` through the relay, half-closes, waits for the close. */
async function grantedSession(port: number, destPort: number, payload: string, userId = 'alice'): Promise<number> {
  const raw = await connectRaw(port);
  const clientPort = raw.socket.localPort ?? 0;
  raw.socket.write(socks4Request(1, destPort, '127.0.0.1', userId));
  assert.equal((await raw.read(8))[1], 90);
  raw.socket.write(payload);
  assert.equal((await raw.read(payload.length)).toString(), payload);
  raw.socket.end();
  await raw.closed;
  return clientPort;
}

test('granted CONNECT: a SERVER span named for the command, an upstream-connect child, the attributes', async () => {
  await withTraces(async (h, proxyPort) => {
    const clientPort = await grantedSession(proxyPort, echo.port, 'ping-pong');
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assert.equal(span.name, 'socks4 CONNECT');
    assert.equal(span.kind, SpanKind.SERVER);
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    assert.equal(span.parentSpanContext, undefined, 'a session is a root span');
    const a = attrs(span);
    assert.match(String(a['socks4.session.id']), /\S/);
    assert.match(String(a['socks4.snapshot.version']), /^[0-9a-f]{12}$/);
    assert.ok(Number(a['socks4.handshake.duration_ms']) >= 0);
    for (const key of ['socks4.session.id', 'socks4.snapshot.version', 'socks4.handshake.duration_ms']) delete a[key];
    assert.deepEqual(a, {
      'client.address': '127.0.0.1',
      'client.port': clientPort,
      'server.address': '127.0.0.1',
      'server.port': proxyPort,
      'network.transport': 'tcp',
      'socks4.command': 'connect',
      'socks4.userid': 'alice',
      'socks4.destination.ip': '127.0.0.1',
      'socks4.destination.port': echo.port,
      'socks4.rule.id': 'proxies/traced/local',
      'socks4.policy': 'proxies/traced',
      'socks4.tier': 'Namespace',
      'socks4.reply.code': 90,
      'socks4.bytes.from_client': 9,
      'socks4.bytes.to_client': 9,
    });
    assert.deepEqual(
      span.events.map((e) => e.name),
      ['socks4.reply', 'socks4.established'],
    );
    assert.equal(span.events[0]?.attributes?.['socks4.reply.code'], 90);
    const children = h.childrenOf(span);
    assert.deepEqual(
      children.map((c) => c.name),
      ['socks4 upstream connect'],
    );
    const connect = children[0]!;
    assertNested(span, connect);
    assert.equal(connect.kind, SpanKind.CLIENT);
    assert.equal(connect.status.code, SpanStatusCode.UNSET);
    assert.deepEqual(attrs(connect), {
      'server.address': '127.0.0.1',
      'server.port': echo.port,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': echo.port,
      'network.transport': 'tcp',
    });
    assert.equal(h.counts.started, h.counts.ended);
  });
});

test('denied by a rule: status unset, error.type the reason, reply 91, the deciding rule, no children', async () => {
  await withTraces(async (h, proxyPort) => {
    const { reply, raw } = await exchange(proxyPort, socks4Request(1, 9, '127.0.0.1', 'bob'));
    assert.equal(reply[1], 91);
    await raw.closed;
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assert.equal(span.name, 'socks4 CONNECT');
    assertRefused(span, 'RuleDenied', 91);
    assert.equal(span.attributes['socks4.rule.id'], 'proxies/traced/no-discard');
    assert.equal(span.attributes['socks4.userid'], 'bob');
    assert.deepEqual(h.childrenOf(span), []);
    assert.deepEqual(
      span.events.map((e) => e.name),
      ['socks4.reply'],
    );
  });
});

test('no rule matched, USERIDs redacted by configuration', async () => {
  await withTraces(
    async (h, proxyPort) => {
      const { reply, raw } = await exchange(proxyPort, socks4Request(1, 80, '10.1.2.3', 'secret-user'));
      assert.equal(reply[1], 91);
      await raw.closed;
      const [span] = await h.waitForSessions(1);
      assert.ok(span);
      assertRefused(span, 'NoRuleMatched', 91);
      assert.equal('socks4.userid' in span.attributes, false);
      assert.equal('socks4.rule.id' in span.attributes, false);
      assert.equal(JSON.stringify(span.attributes).includes('secret-user'), false);
    },
    { redactUserIds: true },
  );
});

test('limited: a limits child per session; the refused one has error.type RateLimited, status unset', async () => {
  const limited = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: capped}
spec:
  rules:
    - name: one-per-minute
      action: Allow
      to: {cidrs: ["127.0.0.1/32"]}
      limits: {connectionRate: {perSecond: 0.01, burst: 1, key: Rule}}
`;
  await withTraces(
    async (h, proxyPort) => {
      await grantedSession(proxyPort, echo.port, 'x');
      const { reply, raw } = await exchange(proxyPort, socks4Request(1, echo.port, '127.0.0.1'));
      assert.equal(reply[1], 91);
      await raw.closed;
      const [first, second] = await h.waitForSessions(2);
      assert.ok(first && second);
      const okLimits = h.childrenOf(first).find((c) => c.name === 'socks4 limits');
      assert.ok(okLimits);
      assert.equal(okLimits.status.code, SpanStatusCode.UNSET);
      assert.equal(okLimits.attributes['socks4.rule.id'], 'default/capped/one-per-minute');
      assertRefused(second, 'RateLimited', 91);
      const children = h.childrenOf(second);
      assert.deepEqual(
        children.map((c) => c.name),
        ['socks4 limits'],
      );
      assertNested(second, children[0]!);
      // The limits check worked: it decided "over the limit". Not an error; error.type says why.
      assert.equal(children[0]!.status.code, SpanStatusCode.UNSET);
      assert.equal(children[0]!.attributes['error.type'], 'RateLimited');
    },
    { policy: limited },
  );
});

test('ident failed: the ident child is ERROR, the session has error.type IdentMismatch with status unset, reply 93', async () => {
  const identd = await startIdentd({ respond: (c, s) => `${c} , ${s} : USERID : UNIX : mallory` });
  const identPolicy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ident}
spec:
  rules:
    - name: checked
      action: Allow
      to: {cidrs: ["127.0.0.1/32"]}
      ident: Required
`;
  try {
    await withTraces(
      async (h, proxyPort) => {
        const { reply, raw } = await exchange(proxyPort, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
        assert.equal(reply[1], 93);
        await raw.closed;
        const [span] = await h.waitForSessions(1);
        assert.ok(span);
        assertRefused(span, 'IdentMismatch', 93);
        const children = h.childrenOf(span);
        assert.deepEqual(
          children.map((c) => c.name),
          ['socks4 ident'],
        );
        const ident = children[0]!;
        assertNested(span, ident);
        assert.equal(ident.kind, SpanKind.CLIENT);
        assert.equal(ident.status.code, SpanStatusCode.ERROR);
        assert.equal(ident.attributes['error.type'], 'IdentMismatch');
        assert.equal(ident.attributes['server.address'], '127.0.0.1');
      },
      { policy: identPolicy, config: { identPort: identd.port } },
    );
  } finally {
    await identd.close();
  }
});

test('upstream refused: the connect child and the session are ERROR UpstreamRefused', async () => {
  await withTraces(async (h, proxyPort) => {
    const { reply, raw } = await exchange(proxyPort, socks4Request(1, closedPort, '127.0.0.1'));
    assert.equal(reply[1], 91);
    await raw.closed;
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assertRefused(span, 'UpstreamRefused', 91, true);
    const [connect] = h.childrenOf(span);
    assert.ok(connect);
    assert.equal(connect.name, 'socks4 upstream connect');
    assertNested(span, connect);
    assert.equal(connect.status.code, SpanStatusCode.ERROR);
    assert.equal(connect.attributes['error.type'], 'UpstreamRefused');
    assert.equal(connect.attributes['server.port'], closedPort);
  });
});

test('client aborted mid-request (a TCP health check): a span without a command, error.type ClientAborted, status unset, no reply', async () => {
  await withTraces(async (h, proxyPort) => {
    // Hang up only once the proxy has the connection (its session:start), so the abort is seen
    // mid-request by a session, whatever the load; TCP delivers the 5 bytes before the FIN.
    const started = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no session:start within 5 s')), 5000);
      const onStart = (): void => {
        clearTimeout(timer);
        channels.sessionStart.unsubscribe(onStart);
        resolve();
      };
      channels.sessionStart.subscribe(onStart);
    });
    const raw = await connectRaw(proxyPort);
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'alice').subarray(0, 5));
    await started;
    raw.socket.destroy();
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assert.equal(span.name, 'socks4');
    assertRefused(span, 'ClientAborted', undefined);
    assert.equal('socks4.command' in span.attributes, false);
    assert.deepEqual(span.events, []);
  });
});

test('SOCKS4a: a DNS child with the name asked; a failed lookup is ERROR DnsFailed', async () => {
  await withTraces(async (h, proxyPort) => {
    const raw = await connectRaw(proxyPort);
    raw.socket.write(socks4Request(1, echo.port, '0.0.0.1', 'alice', 'echo.test'));
    assert.equal((await raw.read(8))[1], 90);
    raw.socket.destroy();
    const failed = await exchange(proxyPort, socks4Request(1, echo.port, '0.0.0.1', 'alice', 'missing.test'));
    assert.equal(failed.reply[1], 91);
    const spans = await h.waitForSessions(2);
    const ok = spans.find((s) => s.attributes['socks4.destination.host'] === 'echo.test');
    const bad = spans.find((s) => s.attributes['socks4.destination.host'] === 'missing.test');
    assert.ok(ok && bad);
    assert.equal(ok.attributes['socks4.destination.host'], 'echo.test');
    assert.equal(ok.attributes['socks4.destination.ip'], '127.0.0.1');
    assert.deepEqual(
      h
        .childrenOf(ok)
        .map((c) => c.name)
        .sort(),
      ['socks4 dns lookup', 'socks4 upstream connect'],
    );
    const connect = h.childrenOf(ok).find((c) => c.name === 'socks4 upstream connect');
    assert.equal(connect?.attributes['server.address'], 'echo.test');
    assert.equal(connect?.attributes['network.peer.address'], '127.0.0.1');
    const [dns] = h.childrenOf(bad);
    assert.ok(dns);
    assert.equal(dns.name, 'socks4 dns lookup');
    assert.equal(dns.attributes['dns.question.name'], 'missing.test');
    assert.equal(dns.status.code, SpanStatusCode.ERROR);
    assertRefused(bad, 'DnsFailed', 91, true);
  });
});

/** BIND: returns the first reply's port and the raw exchange. */
async function openBind(proxyPort: number): Promise<{ raw: Awaited<ReturnType<typeof connectRaw>>; port: number }> {
  const raw = await connectRaw(proxyPort);
  raw.socket.write(socks4Request(2, 1, '127.0.0.1', 'alice'));
  const first = await raw.read(8);
  assert.equal(first[1], 90);
  return { raw, port: first.readUInt16BE(2) };
}

test('BIND: socks4 BIND span, a bind-accept child, both replies as events', async () => {
  await withTraces(async (h, proxyPort) => {
    const { raw, port } = await openBind(proxyPort);
    const peer = net.connect({ host: '127.0.0.1', port });
    await once(peer, 'connect');
    assert.equal((await raw.read(8))[1], 90);
    raw.socket.write('to-peer');
    const [got] = await once(peer, 'data');
    assert.equal(String(got), 'to-peer');
    peer.end();
    raw.socket.end();
    await raw.closed;
    peer.destroy();
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assert.equal(span.name, 'socks4 BIND');
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    assert.equal(span.attributes['socks4.command'], 'bind');
    assert.equal(span.attributes['socks4.bytes.from_client'], 7);
    assert.deepEqual(
      span.events.map((e) => e.name),
      ['socks4.reply', 'socks4.established'],
    );
    const [accept] = h.childrenOf(span);
    assert.ok(accept);
    assert.equal(accept.name, 'socks4 bind accept');
    assertNested(span, accept);
    assert.equal(accept.status.code, SpanStatusCode.UNSET);
    assert.equal(accept.attributes['socks4.bind.expected_address'], '127.0.0.1');
  });
});

test('BIND still waiting when the server drains: the bind-accept child is cut short at the close', async () => {
  const h = createSpanHarness();
  const proxy = await startProxy(policy, { resolve });
  try {
    const { raw } = await openBind(proxy.port);
    await proxy.close(); // drain with no grace: the waiting session is ended
    await raw.closed;
    const [span] = await h.waitForSessions(1);
    assert.ok(span);
    assert.equal(span.name, 'socks4 BIND');
    assert.equal(span.events[0]?.name, 'socks4.reply');
    assert.equal(span.events[0]?.attributes?.['socks4.reply.code'], 90);
    // The phase ends after the session (the listener's close settles a tick later): bounded wait.
    const deadline = Date.now() + 2000;
    while (h.childrenOf(span).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const [accept] = h.childrenOf(span);
    assert.ok(accept);
    assert.equal(accept.name, 'socks4 bind accept');
    assertNested(span, accept);
    assert.equal(accept.attributes['socks4.phase.cut_short'], true);
    assert.equal(accept.status.code, SpanStatusCode.ERROR);
    assert.equal(ms(accept.endTime), ms(span.endTime));
    assert.equal(h.counts.started, h.counts.ended);
  } finally {
    await h.close();
  }
});

test('unsubscribing ends the spans of sessions still open', async () => {
  const h = createSpanHarness();
  const proxy = await startProxy(policy, { resolve });
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1'));
    assert.equal((await raw.read(8))[1], 90);
    h.unsubscribe();
    const [span] = h.sessionSpans();
    assert.ok(span);
    assert.equal(span.name, 'socks4 CONNECT');
    assert.ok(span.events.some((e) => e.name === 'socks4.tracing_stopped'));
    assert.equal(h.counts.started, h.counts.ended);
    raw.socket.destroy();
  } finally {
    await proxy.close();
    await h.close();
  }
});

test('1 000 sessions of every outcome leave no span unended', async () => {
  await withTraces(async (h, proxyPort) => {
    const one = async (i: number): Promise<void> => {
      switch (i % 4) {
        case 0:
          await grantedSession(proxyPort, echo.port, 'hi');
          return;
        case 1: {
          const { raw } = await exchange(proxyPort, socks4Request(1, 9, '127.0.0.1'));
          return raw.closed;
        }
        case 2: {
          const raw = await connectRaw(proxyPort);
          raw.socket.write(Buffer.from([4, 1]));
          raw.socket.destroy();
          return raw.closed;
        }
        default: {
          const { raw } = await exchange(proxyPort, socks4Request(1, closedPort, '127.0.0.1'));
          return raw.closed;
        }
      }
    };
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => one(batch * 50 + k)));
    }
    const spans = await h.waitForSessions(1000, 10_000);
    assert.equal(spans.length, 1000);
    assert.ok(spans.every((s) => s.ended));
    assert.equal(h.counts.started, h.counts.ended);
    assert.equal(h.counts.started, 1000 + 500); // granted and upstream-refused have a connect child
    const byReason = new Map<unknown, number>();
    for (const s of spans)
      byReason.set(s.attributes['socks4.reason'], (byReason.get(s.attributes['socks4.reason']) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byReason), {
      undefined: 250,
      RuleDenied: 250,
      ClientAborted: 250,
      UpstreamRefused: 250,
    });
  });
});
