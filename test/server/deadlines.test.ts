// Deadlines that compose (issue #12): the handshake deadline covers reading the request only;
// the limiter has its own (a late answer refuses with LimiterUnavailable and a lease granted
// after it is handed back). In-process proxy with a limiter that answers when the test says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Admission, Limiter } from '../../src/limits/types.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { connectRaw, socks4Request, startEchoServer, startProxy } from '../helpers/servers.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: p}
spec:
  rules:
    - {name: r, action: Allow, to: {cidrs: ["127.0.0.1/32"]}, limits: {concurrentSessions: {max: 5, key: Rule}}}
`;

test('a limiter slower than --limits-timeout refuses with LimiterUnavailable; its late lease is released', async () => {
  const echo = await startEchoServer();
  let answer: ((a: Admission) => void) | null = null;
  let released = 0;
  const slow: Limiter = {
    admit: () => new Promise<Admission>((resolve) => (answer = resolve)),
    close: () => {},
  };
  // The handshake deadline is shorter than the limits deadline: it must not cut the decision.
  const proxy = await startProxy(policy, { limiter: slow, config: { handshakeTimeoutMs: 100, limitsTimeoutMs: 400 } });
  const reasons: string[] = [];
  const onEnd = (m: unknown): void => void reasons.push((m as SessionInfo).reason ?? '');
  channels.sessionEnd.subscribe(onEnd);
  try {
    const raw = await connectRaw(proxy.port);
    const started = performance.now();
    raw.socket.write(socks4Request(1, echo.port, '127.0.0.1', 'u'));
    const reply = await raw.read(8, 5000);
    const ms = performance.now() - started;
    assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
    assert.ok(ms >= 350 && ms < 3000, `refused after ${Math.round(ms)} ms, not at the limits deadline`);
    await raw.closed;
    assert.deepEqual(reasons, ['LimiterUnavailable']);
    // The limiter answers after all: the lease goes straight back.
    answer!({ ok: true, lease: { release: () => void released++, bandwidth: null } });
    for (let i = 0; i < 50 && released === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(released, 1);
  } finally {
    channels.sessionEnd.unsubscribe(onEnd);
    await proxy.close();
    await echo.close();
  }
});
