import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkGcra, isGcraIdle } from '../../src/limits/gcra.ts';
import { buildLimitKey } from '../../src/limits/keys.ts';
import { createMemoryLimiter } from '../../src/limits/memory-limiter.ts';
import type { AdmitRequest, RuleLimits } from '../../src/limits/types.ts';
import { createManualClock, runLimiterContract } from './limiter-contract.ts';

runLimiterContract('memory', async (clock) => {
  const limiter = createMemoryLimiter({ now: clock.now });
  return { limiter, advance: (ms) => clock.advance(ms), cleanup: () => limiter.close() };
});

const request = (limits: RuleLimits, over: Partial<AdmitRequest> = {}): AdmitRequest => ({
  ruleId: 'rule-1',
  limits,
  sourceIp: '192.0.2.1',
  userId: 'alice',
  sessionId: 's',
  ...over,
});

describe('memory limiter', () => {
  it('answers synchronously with a plain object', () => {
    const limiter = createMemoryLimiter();
    const admission = limiter.admit(request({ concurrentSessions: { max: 1, key: 'Rule' } }));
    assert.equal(admission instanceof Promise, false);
    assert.equal(admission.ok, true);
    limiter.close();
  });

  it('rounds a fractional interval up, and waiting retryAfterMs is always enough', () => {
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now });
    const limits: RuleLimits = { connectionRate: { perSecond: 3, burst: 1, key: 'Rule' } };
    assert.equal(limiter.admit(request(limits)).ok, true);
    for (let i = 0; i < 5; i++) {
      const refused = limiter.admit(request(limits));
      assert.ok(!refused.ok);
      assert.ok(refused.retryAfterMs === 333 || refused.retryAfterMs === 334, `${refused.retryAfterMs}`);
      clock.advance(refused.retryAfterMs - 1);
      assert.equal(limiter.admit(request(limits)).ok, false);
      clock.advance(1);
      assert.equal(limiter.admit(request(limits)).ok, true);
    }
  });

  it('forgets rate keys once their buckets are full again (lazy sweep from admit)', () => {
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now, sweepIntervalMs: 5000 });
    const limits: RuleLimits = { connectionRate: { perSecond: 1, burst: 2, key: 'SourceIP' } };
    for (let i = 0; i < 500; i++) limiter.admit(request(limits, { sourceIp: `10.0.${i >> 8}.${i & 255}` }));
    assert.equal(limiter.countKeys().rate, 500);
    clock.advance(900); // buckets not yet full: nothing may be forgotten
    limiter.sweep();
    assert.equal(limiter.countKeys().rate, 500);
    clock.advance(5100); // full again, and the interval since the last sweep has passed
    limiter.admit(request(limits, { sourceIp: '10.9.9.9' }));
    assert.equal(limiter.countKeys().rate, 1);
    limiter.close();
  });

  it('keeps a rate key up to its TAT and forgets it at the TAT, to the millisecond', () => {
    // Forgetting a key early is not harmless: the client's next attempt is judged as a fresh
    // key's, with a full burst. 1/s with burst 1: the TAT after one admission at 0 is 1000.
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now, sweepIntervalMs: 60_000 });
    const limits: RuleLimits = { connectionRate: { perSecond: 1, burst: 1, key: 'SourceIP' } };
    assert.equal(limiter.admit(request(limits)).ok, true);
    clock.advance(999);
    limiter.sweep();
    assert.equal(limiter.countKeys().rate, 1, 'kept 1 ms before its TAT');
    assert.deepEqual(limiter.admit(request(limits)), { ok: false, reason: 'RateLimited', retryAfterMs: 1 });
    clock.advance(1);
    limiter.sweep();
    assert.equal(limiter.countKeys().rate, 0, 'forgotten at its TAT');
    assert.equal(limiter.admit(request(limits)).ok, true);
    limiter.close();
  });

  it('isGcraIdle: a TAT in the future is live, one at or before now is idle', () => {
    assert.equal(isGcraIdle(1000, 999), false);
    assert.equal(isGcraIdle(1000, 999.999), false);
    assert.equal(isGcraIdle(1000, 1000), true);
    assert.equal(isGcraIdle(1000, 1001), true);
  });

  it('does not sweep more often than the interval', () => {
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now, sweepIntervalMs: 5000 });
    const limits: RuleLimits = { connectionRate: { perSecond: 100, burst: 1, key: 'SourceIP' } };
    limiter.admit(request(limits, { sourceIp: '10.0.0.1' }));
    clock.advance(1000);
    limiter.admit(request(limits, { sourceIp: '10.0.0.2' }));
    assert.equal(limiter.countKeys().rate, 2);
    clock.advance(4000);
    limiter.admit(request(limits, { sourceIp: '10.0.0.3' }));
    assert.equal(limiter.countKeys().rate, 1);
    limiter.close();
  });

  it('drops a concurrency key when its last lease is released', () => {
    const limiter = createMemoryLimiter();
    const limits: RuleLimits = { concurrentSessions: { max: 5, key: 'UserID' } };
    const leases = ['a', 'b', 'a'].map((userId) => limiter.admit(request(limits, { userId })));
    assert.equal(limiter.countKeys().concurrency, 2);
    for (const a of leases) if (a.ok) a.lease.release();
    assert.equal(limiter.countKeys().concurrency, 0);
    limiter.close();
  });

  it('keeps a shared bandwidth bucket while leased or in debt, then forgets it', () => {
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now });
    const limits: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'UserID' } };
    const first = limiter.admit(request(limits));
    assert.ok(first.ok && first.lease.bandwidth);
    assert.equal(first.lease.bandwidth.take(2000), 1000);
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 1, 'leased');
    first.lease.release();
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 1, 'in debt: a new session must inherit the debt');
    const second = limiter.admit(request(limits));
    assert.ok(second.ok && second.lease.bandwidth);
    assert.equal(second.lease.bandwidth.take(1), 1001);
    second.lease.release();
    clock.advance(3000);
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 0);
    limiter.close();
  });

  it('does not keep Session buckets in its tables', () => {
    const limiter = createMemoryLimiter();
    const a = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Session' } }));
    assert.ok(a.ok && a.lease.bandwidth);
    assert.deepEqual(limiter.countKeys(), { rate: 0, concurrency: 0, bandwidth: 0 });
    limiter.close();
  });

  it('follows a changed rate on a shared bucket (policy reload)', () => {
    const clock = createManualClock(0);
    const limiter = createMemoryLimiter({ now: clock.now });
    const slow = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Rule' } }));
    const fast = limiter.admit(request({ bandwidth: { bytesPerSecond: 4000, key: 'Rule' } }));
    assert.ok(slow.ok && fast.ok && fast.lease.bandwidth);
    assert.equal(fast.lease.bandwidth.take(1000), 0);
    clock.advance(1000);
    assert.equal(fast.lease.bandwidth.take(4000), 0, 'refilled at the new rate up to the new capacity');
    limiter.close();
  });

  it('mints no tokens when the clock steps back', () => {
    const clock = createManualClock(10_000);
    const limiter = createMemoryLimiter({ now: clock.now });
    const a = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Session' } }));
    assert.ok(a.ok && a.lease.bandwidth);
    assert.equal(a.lease.bandwidth.take(1000, 10_000), 0);
    assert.equal(a.lease.bandwidth.take(100, 5_000), 100);
    assert.equal(a.lease.bandwidth.take(100, 10_100), 100);
    limiter.close();
  });

  it('refuses with LimiterUnavailable after close, and old leases stay harmless', () => {
    const limiter = createMemoryLimiter();
    const a = limiter.admit(request({ concurrentSessions: { max: 1, key: 'Rule' } }));
    limiter.close();
    assert.ok(a.ok);
    a.lease.release();
    assert.deepEqual(limiter.admit(request({})), { ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
  });

  it('never admits more than burst + elapsed × perSecond (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 200 }),
        (perSecond, burst, gaps) => {
          let now = 0;
          let tat: number | undefined;
          let admitted = 0;
          for (const gap of gaps) {
            now += gap;
            const verdict = checkGcra(tat, now, perSecond, burst);
            if (verdict.ok) {
              tat = verdict.tat;
              admitted += 1;
            } else {
              assert.ok(verdict.retryAfterMs > 0);
            }
          }
          return admitted <= burst + Math.floor((now * perSecond) / 1000);
        },
      ),
    );
  });
});

// Cases for mutants Stryker found surviving (`make mutate`): each pins one decision the limiter
// makes on a clock far from zero, where `now - t` and `now + t` part ways.
describe('memory limiter: edges', () => {
  const START = 1_000_000;

  it('an idle key gets its burst back, not a credit for the time it was idle', () => {
    const clock = createManualClock(START);
    const limiter = createMemoryLimiter({ now: clock.now, sweepIntervalMs: 3_600_000 });
    const limits: RuleLimits = { connectionRate: { perSecond: 1, burst: 1, key: 'Rule' } };
    assert.equal(limiter.admit(request(limits)).ok, true);
    clock.advance(10_000); // the key is still held (no sweep), its TAT long past
    assert.equal(limiter.admit(request(limits)).ok, true);
    assert.equal(limiter.admit(request(limits)).ok, false, 'a burst of 1, whatever the idle time');
    limiter.close();
  });

  it('sweeps on the interval since the last sweep, on any clock', () => {
    const clock = createManualClock(START);
    const limiter = createMemoryLimiter({ now: clock.now, sweepIntervalMs: 5000 });
    const limits: RuleLimits = { connectionRate: { perSecond: 100, burst: 1, key: 'SourceIP' } };
    limiter.admit(request(limits, { sourceIp: '10.0.0.1' }));
    clock.advance(1000);
    limiter.admit(request(limits, { sourceIp: '10.0.0.2' }));
    assert.equal(limiter.countKeys().rate, 2, 'no sweep 1 s after the last');
    limiter.close();
  });

  it('a lease without a bandwidth limit carries no gate', () => {
    const limiter = createMemoryLimiter();
    const a = limiter.admit(request({ concurrentSessions: { max: 1, key: 'Rule' } }));
    assert.ok(a.ok);
    assert.equal(a.lease.bandwidth, null);
    limiter.close();
  });

  it('keeps a full shared bucket while a lease holds it, so sessions keep sharing it', () => {
    const clock = createManualClock(START);
    const limiter = createMemoryLimiter({ now: clock.now });
    const limits: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'Rule' } };
    const first = limiter.admit(request(limits));
    assert.ok(first.ok && first.lease.bandwidth);
    clock.advance(60_000);
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 1);
    const second = limiter.admit(request(limits));
    assert.ok(second.ok && second.lease.bandwidth);
    assert.equal(first.lease.bandwidth.take(1000), 0);
    assert.equal(second.lease.bandwidth.take(1000), 1000, 'the second session draws on the same bucket');
    limiter.close();
  });

  it('keeps a released shared bucket in debt until it has refilled, on any clock', () => {
    const clock = createManualClock(START);
    const limiter = createMemoryLimiter({ now: clock.now });
    const a = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Rule' } }));
    assert.ok(a.ok && a.lease.bandwidth);
    assert.equal(a.lease.bandwidth.take(2000), 1000);
    a.lease.release();
    clock.advance(500);
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 1, 'still 500 bytes in debt');
    clock.advance(1500);
    limiter.sweep();
    assert.equal(limiter.countKeys().bandwidth, 0);
    limiter.close();
  });

  it('a rate change credits the time before it at the old rate, and lowering it keeps no excess', () => {
    const clock = createManualClock(START);
    const limiter = createMemoryLimiter({ now: clock.now });
    const slow = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Rule' } }));
    assert.ok(slow.ok && slow.lease.bandwidth);
    assert.equal(slow.lease.bandwidth.take(1000), 0); // empty at START
    clock.advance(1000); // one second at 1000 B/s: 1000 bytes, not 4000
    const fast = limiter.admit(request({ bandwidth: { bytesPerSecond: 4000, key: 'Rule' } }));
    assert.ok(fast.ok && fast.lease.bandwidth);
    assert.equal(fast.lease.bandwidth.take(4000), 750, '3000 bytes short at 4000 B/s');
    // Lowered back to 1000 B/s while in debt: the debt stays, nothing is minted.
    const lowered = limiter.admit(request({ bandwidth: { bytesPerSecond: 1000, key: 'Rule' } }));
    assert.ok(lowered.ok && lowered.lease.bandwidth);
    assert.equal(lowered.lease.bandwidth.take(0), 3000);
    limiter.close();
  });

  it('forgets every key when closed', () => {
    const limiter = createMemoryLimiter();
    const held = limiter.admit(
      request({
        connectionRate: { perSecond: 1, burst: 5, key: 'Rule' },
        concurrentSessions: { max: 5, key: 'Rule' },
        bandwidth: { bytesPerSecond: 10, key: 'Rule' },
      }),
    );
    assert.ok(held.ok);
    assert.deepEqual(limiter.countKeys(), { rate: 1, concurrency: 1, bandwidth: 1 });
    limiter.close();
    assert.deepEqual(limiter.countKeys(), { rate: 0, concurrency: 0, bandwidth: 0 });
  });
});

describe('limit keys', () => {
  it('encodes user-supplied parts so separators and hash tags cannot appear', () => {
    const base = { ruleId: 'ns/p#r', sourceIp: '2001:db8::1', userId: '{x}|y:z\n*' };
    assert.equal(buildLimitKey('Rule', base), 'ns%2Fp%23r');
    assert.equal(buildLimitKey('SourceIP', base), 'ns%2Fp%23r|ip|2001%3Adb8%3A%3A1');
    assert.equal(buildLimitKey('UserID', base), 'ns%2Fp%23r|user|%7Bx%7D%7Cy%3Az%0A*');
  });

  it('does not throw on a lone surrogate', () => {
    assert.equal(buildLimitKey('UserID', { ruleId: 'r', sourceIp: '', userId: '\ud800' }), 'r|user|%EF%BF%BD');
  });
});
