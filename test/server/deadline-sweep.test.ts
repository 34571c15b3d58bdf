// The server's handshake and connect deadlines run on one coarse timer (deadline-sweep.ts): a
// deadline expires at the first check at or after it, never before, and at most a tick late.
// First the sweep on an injected clock (exact), then a real session's handshake deadline through
// an in-process proxy (bounded: the lower bound is exact, the upper one allows a loaded machine).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { DeadlineSweep, tickFor } from '../../src/server/deadline-sweep.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { allowLoopbackPolicy, connectRaw, startProxy } from '../helpers/servers.ts';

class Entry {
  expiredAt: number | null = null;
  readonly clock: { now: number };
  constructor(clock: { now: number }) {
    this.clock = clock;
  }
  expire(): void {
    assert.equal(this.expiredAt, null, 'expired twice');
    this.expiredAt = this.clock.now;
  }
}

test('a deadline expires at the first check at or after it, once, and a deleted one never', () => {
  const clock = { now: 1000 };
  const sweep = new DeadlineSweep<Entry>(10, () => clock.now);
  const early = new Entry(clock);
  const late = new Entry(clock);
  const gone = new Entry(clock);
  const moved = new Entry(clock);
  sweep.add(early, 25); // due at 1025
  sweep.add(late, 40); // due at 1040
  sweep.add(gone, 5);
  sweep.add(moved, 5);
  sweep.add(moved, 60); // replaced: due at 1060
  sweep.delete(gone);
  try {
    clock.now = 1024.9;
    sweep.check();
    assert.deepEqual(
      [early.expiredAt, late.expiredAt, moved.expiredAt],
      [null, null, null],
      'expired before its deadline',
    );
    clock.now = 1025;
    sweep.check();
    assert.equal(early.expiredAt, 1025);
    assert.equal(late.expiredAt, null);
    clock.now = 1050;
    sweep.check();
    sweep.check();
    assert.equal(late.expiredAt, 1050);
    assert.equal(moved.expiredAt, null, 'the first deadline of a re-added entry still counted');
    clock.now = 1060;
    sweep.check();
    assert.equal(moved.expiredAt, 1060);
    assert.equal(gone.expiredAt, null, 'a deleted deadline expired');
    assert.equal(sweep.size, 0);
  } finally {
    sweep.check(); // empty: stops its interval
  }
});

test('the tick is a twentieth of the shortest deadline, from 5 ms to 100 ms', () => {
  assert.equal(tickFor(10_000), 100);
  assert.equal(tickFor(1000), 50);
  assert.equal(tickFor(40), 5);
  assert.equal(tickFor(1), 5);
});

test("a silent client's handshake deadline fires with HandshakeTimeout, not before it and within a tick", async () => {
  const handshakeTimeoutMs = 300;
  const tick = tickFor(handshakeTimeoutMs); // the connect deadline (2 min) is longer
  const proxy = await startProxy(allowLoopbackPolicy, { config: { handshakeTimeoutMs } });
  const ended: { session: SessionInfo; at: number }[] = [];
  const onEnd = (message: unknown): void => void ended.push({ session: message as SessionInfo, at: performance.now() });
  channels.sessionEnd.subscribe(onEnd);
  try {
    const raw = await connectRaw(proxy.port);
    raw.socket.write(Buffer.from([4, 1])); // starts a request and stops
    assert.deepEqual([...(await raw.read(8, 10_000))], [0, 91, 0, 0, 0, 0, 0, 0]);
    await raw.closed;
    assert.equal(ended.length, 1);
    const { session, at } = ended[0]!;
    assert.equal(session.reason, 'HandshakeTimeout');
    // Both times are this process's performance clock: accept to the session's end.
    const ms = at - session.startedAt;
    assert.ok(
      ms >= handshakeTimeoutMs,
      `expired ${ms.toFixed(1)} ms after accept, before its ${handshakeTimeoutMs} ms`,
    );
    // A tick late at most, plus what a loaded machine delays any timer by (generous, not exact).
    assert.ok(ms < handshakeTimeoutMs + tick + 2000, `expired ${ms.toFixed(1)} ms after accept`);
  } finally {
    channels.sessionEnd.unsubscribe(onEnd);
    await proxy.close();
  }
});
