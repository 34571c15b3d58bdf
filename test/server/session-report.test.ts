// What a session records and when it dials, where a Report policy or a name no rule allows is
// involved: a SOCKS4a name no enforced rule could allow is refused NoRuleMatched before any DNS
// query, with the Report record of what the Report policy would have done; a Report rule's limits
// are answered before the session is granted, so the record carries their outcome even when the
// limiter answers slowly; and a client that leaves while that answer is pending is never dialled.
// The proxy runs in this process, with the limiter, resolver and dialler as hooks the test
// controls; the client and the destination are real sockets on 127.0.0.1.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import type { Admission, Lease, Limiter } from '../../src/limits/types.ts';
import { connectUpstream } from '../../src/server/upstream.ts';
import { channels, type ReportRecord, type SessionInfo } from '../../src/telemetry/events.ts';
import { connectRaw, exchange, socks4Request, startProxy, type TestProxy } from '../helpers/servers.ts';

/** The destination: counts the connections it accepted, and holds them open. */
const accepted: net.Socket[] = [];
const upstream = net.createServer((socket) => void accepted.push(socket));
let upstreamPort = 0;
const ended: SessionInfo[] = [];
const onEnd = (message: unknown): void => void ended.push({ ...(message as SessionInfo) });

before(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as net.AddressInfo).port;
  channels.sessionEnd.subscribe(onEnd);
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  for (const socket of accepted) socket.destroy();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

/** Polls `check` every 10 ms, at most `ms`; true as soon as it holds. */
async function poll(check: () => boolean, ms = 5000): Promise<boolean> {
  for (let i = 0; i < ms / 10 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return check();
}

/** The end event of the session whose client used local port `clientPort` (bounded poll). */
async function endOf(clientPort: number): Promise<SessionInfo> {
  assert.ok(await poll(() => ended.some((s) => s.clientPort === clientPort)), `session of port ${clientPort} ended`);
  return ended.find((s) => s.clientPort === clientPort)!;
}

const outcome = (r: ReportRecord | null | undefined): string =>
  r == null ? 'none' : `${r.ruleId} ${r.action} ${r.reason} ${r.reply}`;

test('a SOCKS4a name no enforced rule could allow: 91 NoRuleMatched before DNS, with the Report verdict', async () => {
  const resolved: string[] = [];
  const proxy = await startProxy(
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: trial}
spec:
  priority: 10
  enforcement: Report
  rules:
    - {name: blocked, action: Deny, to: {hosts: ["*.blocked.test"]}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: base}
spec:
  rules:
    - {name: names, action: Allow, to: {hosts: ["*.allowed.test"]}}
`,
    {
      resolve: (host) => {
        resolved.push(host);
        return Promise.resolve('127.0.0.1');
      },
    },
  );
  try {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, upstreamPort, '', 'u', 'api.blocked.test'));
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    const clientPort = raw.socket.localPort!;
    await raw.closed;
    const session = await endOf(clientPort);
    // No rule decided it: the reason is the real one (not an InternalError) and no rule is named.
    assert.deepEqual(
      [session.reason, session.ruleId, session.host, session.error],
      ['NoRuleMatched', null, 'api.blocked.test', null],
    );
    assert.equal(
      outcome(session.report),
      'default/trial/blocked deny RuleDenied 91',
      'what the Report policy would do',
    );
    assert.deepEqual(resolved, [], 'a name no rule could allow was sent to DNS');
  } finally {
    await proxy.close();
  }
});

const reportPolicy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: trial}
spec:
  priority: 10
  enforcement: Report
  rules:
    - {name: capped, action: Allow, to: {cidrs: ["127.0.0.1/32"]}, limits: {concurrentSessions: {max: 1, key: Rule}}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: base}
spec:
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

/** A remote-style limiter the test answers: each admit waits for `answer`; counts lease releases. */
function heldLimiter(): {
  limiter: Limiter;
  asked: () => number;
  answer(admission: Admission): void;
  lease(): Lease;
  released: () => number;
} {
  const pending: Array<(admission: Admission) => void> = [];
  let asked = 0;
  let released = 0;
  return {
    limiter: {
      admit: () =>
        new Promise<Admission>((resolve) => {
          asked++;
          pending.push(resolve);
        }),
      close: () => {},
    },
    asked: () => asked,
    answer: (admission) => pending.shift()!(admission),
    lease: () => ({ release: () => void released++, bandwidth: null }),
    released: () => released,
  };
}

/** The Report policy behind a proxy whose limiter the test answers and whose dials it records. */
async function startHeldReportProxy(): Promise<{
  held: ReturnType<typeof heldLimiter>;
  dialled: string[];
  proxy: TestProxy;
}> {
  const held = heldLimiter();
  const dialled: string[] = [];
  const proxy = await startProxy(reportPolicy, {
    limiter: held.limiter,
    config: { limitsTimeoutMs: 60_000 },
    dial: (ip, port, timeoutMs) => {
      dialled.push(`${ip}:${port}`);
      return connectUpstream(ip, port, timeoutMs);
    },
  });
  return { held, dialled, proxy };
}

test('a slow Report limiter is answered before the grant: nothing dialled until then, its refusal on the record', async () => {
  const { held, dialled, proxy } = await startHeldReportProxy();
  try {
    const before = accepted.length;
    const raw = await connectRaw(proxy.port);
    const clientPort = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, upstreamPort, '127.0.0.1', 'gina'));
    assert.ok(await poll(() => held.asked() === 1), "the Report rule's limiter was never asked");
    // While the Report limiter decides, the session waits: a dial now would be granted (and its
    // record closed) before the limit outcome is known. Bounded: 1 s, or at once on a dial.
    assert.equal(await poll(() => dialled.length > 0 || accepted.length > before, 1000), false, 'dialled early');
    held.answer({ ok: false, reason: 'ConcurrencyLimited', retryAfterMs: 0 });
    assert.equal((await raw.read(8))[1], 90, 'a Report refusal is never obeyed');
    assert.deepEqual(dialled, [`127.0.0.1:${upstreamPort}`]);
    raw.socket.destroy();
    const session = await endOf(clientPort);
    assert.equal(outcome(session.report), 'default/trial/capped deny ConcurrencyLimited 91');
  } finally {
    await proxy.close();
  }
});

test('a client that leaves while the Report limiter decides is never dialled; the late lease goes back', async () => {
  const { held, dialled, proxy } = await startHeldReportProxy();
  try {
    const before = accepted.length;
    const raw = await connectRaw(proxy.port);
    const clientPort = raw.socket.localPort!;
    raw.socket.write(socks4Request(1, upstreamPort, '127.0.0.1', 'hank'));
    assert.ok(await poll(() => held.asked() === 1), "the Report rule's limiter was never asked");
    raw.socket.destroy(); // gone while the (Redis) limiter decides
    assert.equal((await endOf(clientPort)).reason, 'ClientAborted');
    held.answer({ ok: true, lease: held.lease() });
    // The session has taken the answer once the lease is back; whatever it does next runs in
    // the microtasks after that, so one turn of the event loop later a dial would be recorded.
    assert.ok(await poll(() => held.released() === 1), 'the late Report lease was not handed back');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(dialled, [], 'a session whose client left dialled its destination');
    assert.equal(accepted.length, before, 'a connection reached the destination');
  } finally {
    await proxy.close();
  }
});
