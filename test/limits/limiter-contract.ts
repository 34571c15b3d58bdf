// The contract every limiter passes (in-process now, Redis later), in the style of
// aedes-persistence's abstract suite: `runLimiterContract(name, makeLimiter)` registers the tests.
//
// Time: the suite owns a ManualClock and hands it to makeLimiter. A limiter that can take an
// injected clock uses it and makes `advance` a plain clock.advance; a limiter on real time (Redis
// TIME) also advances the clock but really sleeps in `advance`. Waits are kept to ~100 ms steps
// and rates to 10/s so that real-time runs are short and have slack. Bandwidth gates are driven
// with explicit `now` values from the clock, so those tests never sleep.
// Every test uses fresh random rule ids, so a shared backend needs no flushing between tests.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Admission, AdmitRequest, Lease, Limiter, RuleLimits } from '../../src/limits/types.ts';

export interface ManualClock {
  now(): number;
  advance(ms: number): void;
}

export interface LimiterHarness {
  limiter: Limiter;
  /** Moves the limiter's time forward by ms (and must advance `clock` by the same amount). */
  advance(ms: number): void | Promise<void>;
  cleanup(): void | Promise<void>;
}

export function createManualClock(start = Date.now()): ManualClock {
  let t = start;
  return {
    now: () => t,
    advance(ms: number): void {
      t += ms;
    },
  };
}

const PER_SECOND = 10; // one token every 100 ms
const INTERVAL_MS = 1000 / PER_SECOND;

export function runLimiterContract(name: string, makeLimiter: (clock: ManualClock) => Promise<LimiterHarness>): void {
  describe(`limiter contract: ${name}`, () => {
    // Opens a harness for one test; the test's `after` closes leases and the harness.
    async function open(t: { after(fn: () => unknown): void }) {
      const clock = createManualClock();
      const harness = await makeLimiter(clock);
      const leases: Lease[] = [];
      t.after(async () => {
        for (const lease of leases) lease.release();
        await harness.cleanup();
      });
      const ruleId = `r-${randomUUID()}`;
      const request = (limits: RuleLimits, over: Partial<AdmitRequest> = {}): AdmitRequest => ({
        ruleId,
        limits,
        sourceIp: '192.0.2.1',
        userId: 'alice',
        sessionId: randomUUID(),
        ...over,
      });
      const admit = async (req: AdmitRequest): Promise<Admission> => {
        const admission = await harness.limiter.admit(req);
        if (admission.ok) leases.push(admission.lease);
        return admission;
      };
      const advance = async (ms: number): Promise<void> => {
        await harness.advance(ms);
      };
      return { clock, ruleId, request, admit, advance };
    }

    const expectOk = (a: Admission): Lease => {
      assert.equal(a.ok, true, `expected admission, got ${JSON.stringify(a)}`);
      assert.ok(a.ok);
      return a.lease;
    };
    const expectRefused = (a: Admission, reason: 'RateLimited' | 'ConcurrencyLimited'): number => {
      assert.equal(a.ok, false, `expected ${reason}, got an admission`);
      assert.ok(!a.ok);
      assert.equal(a.reason, reason);
      return a.retryAfterMs;
    };

    it('admits without limits and hands out no bandwidth gate', async (t) => {
      const { request, admit } = await open(t);
      const lease = expectOk(await admit(request({})));
      assert.equal(lease.bandwidth, null);
      lease.release();
      lease.release();
    });

    it('admits a burst at once, refuses the next with retryAfterMs, admits again after 1/perSecond', async (t) => {
      const { request, admit, advance } = await open(t);
      const limits: RuleLimits = { connectionRate: { perSecond: PER_SECOND, burst: 3, key: 'SourceIP' } };
      for (let i = 0; i < 3; i++) expectOk(await admit(request(limits)));
      const retryAfterMs = expectRefused(await admit(request(limits)), 'RateLimited');
      assert.ok(retryAfterMs > 0 && retryAfterMs <= INTERVAL_MS, `retryAfterMs ${retryAfterMs}`);
      await advance(INTERVAL_MS);
      expectOk(await admit(request(limits)));
      expectRefused(await admit(request(limits)), 'RateLimited');
    });

    it('keeps rate budgets of different source IPs apart', async (t) => {
      const { request, admit } = await open(t);
      // One token a second, as for USERIDs below: each address's two calls are four round trips
      // apart, which a loaded machine can stretch past 100 ms (10/s refilled one in CI).
      const limits: RuleLimits = { connectionRate: { perSecond: 1, burst: 1, key: 'SourceIP' } };
      const ips = ['192.0.2.1', '192.0.2.10', '2001:db8::1', '::ffff:192.0.2.1'];
      for (const sourceIp of ips) expectOk(await admit(request(limits, { sourceIp })));
      for (const sourceIp of ips) expectRefused(await admit(request(limits, { sourceIp })), 'RateLimited');
    });

    it('keeps rate budgets of different userids apart, hostile ones included', async (t) => {
      const { request, admit } = await open(t);
      // One token a second: each USERID's two calls are one round trip apart, far inside it even
      // on a loaded machine (with the whole list between them, 22 round trips could outlast it).
      const limits: RuleLimits = { connectionRate: { perSecond: 1, burst: 1, key: 'UserID' } };
      const userIds = [
        'alice',
        'bob',
        '',
        '*',
        '?',
        '{',
        '}',
        '{alice}',
        ':',
        'a:b',
        '|',
        'alice|x',
        '%',
        '%7B',
        '\n',
        'a\r\nb',
        ' ',
        '192.0.2.1',
        'é',
        'x'.repeat(255),
        `${'x'.repeat(254)}y`,
        `${'é'.repeat(127)}x`,
      ];
      assert.equal(new Set(userIds).size, userIds.length);
      // The source IP is the same for all: only the USERID separates the budgets.
      // Each USERID gets its own token after every other one has spent its own.
      for (const userId of userIds) {
        expectOk(await admit(request(limits, { userId })));
        expectRefused(await admit(request(limits, { userId })), 'RateLimited');
      }
    });

    it('shares one budget across sources and users when keyed by Rule', async (t) => {
      const { request, admit } = await open(t);
      const limits: RuleLimits = { connectionRate: { perSecond: PER_SECOND, burst: 2, key: 'Rule' } };
      expectOk(await admit(request(limits, { sourceIp: '192.0.2.1', userId: 'alice' })));
      expectOk(await admit(request(limits, { sourceIp: '192.0.2.2', userId: 'bob' })));
      expectRefused(await admit(request(limits, { sourceIp: '192.0.2.3', userId: 'carol' })), 'RateLimited');
    });

    it('never lets one rule spend another rule’s budget, even with look-alike names', async (t) => {
      const { ruleId, request, admit } = await open(t);
      const bySource: RuleLimits = { connectionRate: { perSecond: PER_SECOND, burst: 1, key: 'SourceIP' } };
      const byRule: RuleLimits = { connectionRate: { perSecond: PER_SECOND, burst: 1, key: 'Rule' } };
      const byUser: RuleLimits = { connectionRate: { perSecond: PER_SECOND, burst: 1, key: 'UserID' } };
      // Naive `rule|ip` keys would make these three the same key.
      expectOk(await admit(request(bySource, { sourceIp: '1' })));
      expectOk(await admit(request(byRule, { ruleId: `${ruleId}|1` })));
      expectOk(await admit(request(byRule, { ruleId: `${ruleId}|ip|1` })));
      // A USERID spelled like an address does not share that address's budget.
      expectOk(await admit(request(bySource, { ruleId: `${ruleId}-x`, sourceIp: '192.0.2.9' })));
      expectOk(await admit(request(byUser, { ruleId: `${ruleId}-x`, userId: '192.0.2.9' })));
    });

    it('enforces the concurrency maximum exactly and frees a slot on release', async (t) => {
      const { request, admit } = await open(t);
      const limits: RuleLimits = { concurrentSessions: { max: 3, key: 'UserID' } };
      const held = [];
      for (let i = 0; i < 3; i++) held.push(expectOk(await admit(request(limits))));
      expectRefused(await admit(request(limits)), 'ConcurrencyLimited');
      expectOk(await admit(request(limits, { userId: 'bob' })));
      held[0]?.release();
      expectOk(await admit(request(limits)));
      expectRefused(await admit(request(limits)), 'ConcurrencyLimited');
    });

    it('treats a double release as one release', async (t) => {
      const { request, admit } = await open(t);
      const limits: RuleLimits = { concurrentSessions: { max: 2, key: 'Rule' } };
      const first = expectOk(await admit(request(limits)));
      expectOk(await admit(request(limits)));
      first.release();
      first.release();
      expectOk(await admit(request(limits)));
      // Two live leases again: a second release of `first` must not have freed a third slot.
      expectRefused(await admit(request(limits)), 'ConcurrencyLimited');
    });

    it('spends no rate token on an admission refused for concurrency', async (t) => {
      const { request, admit } = await open(t);
      const limits: RuleLimits = {
        connectionRate: { perSecond: PER_SECOND, burst: 3, key: 'SourceIP' },
        concurrentSessions: { max: 1, key: 'SourceIP' },
      };
      const lease = expectOk(await admit(request(limits)));
      for (let i = 0; i < 4; i++) expectRefused(await admit(request(limits)), 'ConcurrencyLimited');
      lease.release();
      // Had the refusals spent tokens, the bucket would be empty now.
      expectOk(await admit(request(limits)));
    });

    it('takes no concurrency slot on an admission refused for rate', async (t) => {
      const { request, admit, advance } = await open(t);
      const limits: RuleLimits = {
        connectionRate: { perSecond: PER_SECOND, burst: 1, key: 'UserID' },
        concurrentSessions: { max: 2, key: 'UserID' },
      };
      expectOk(await admit(request(limits)));
      for (let i = 0; i < 3; i++) expectRefused(await admit(request(limits)), 'RateLimited');
      await advance(INTERVAL_MS);
      expectOk(await admit(request(limits)));
      await advance(INTERVAL_MS);
      expectRefused(await admit(request(limits)), 'ConcurrencyLimited');
    });

    // Sessions of a busy pod ask in the same event-loop turn (the Redis limiter sends them as one
    // call): each must be decided as if asked alone, after the ones before it.
    it('decides admissions asked together as if one after another, in the order asked', async (t) => {
      const { ruleId, request, admit } = await open(t);
      const limits: RuleLimits = {
        connectionRate: { perSecond: PER_SECOND, burst: 4, key: 'SourceIP' },
        concurrentSessions: { max: 2, key: 'UserID' },
      };
      const other: RuleLimits = { concurrentSessions: { max: 1, key: 'Rule' } };
      const together = await Promise.all([
        admit(request(limits, { userId: 'alice' })),
        admit(request(limits, { userId: 'alice' })),
        // Over alice's slots: refused for concurrency, and spends no rate token.
        admit(request(limits, { userId: 'alice' })),
        admit(request(limits, { userId: 'bob' })),
        // Another rule in the same turn (another slot on Redis Cluster) keeps its own budget.
        admit(request(other, { ruleId: `${ruleId}-b` })),
        admit(request(other, { ruleId: `${ruleId}-b` })),
        admit(request(limits, { userId: 'carol' })),
        // The burst of 4 is spent by alice twice, bob and carol.
        admit(request(limits, { userId: 'dave' })),
      ]);
      assert.deepEqual(
        together.map((a) => (a.ok ? 'ok' : a.reason)),
        ['ok', 'ok', 'ConcurrencyLimited', 'ok', 'ok', 'ConcurrencyLimited', 'ok', 'RateLimited'],
      );
    });

    it('counts a release given back between admissions asked together', async (t) => {
      const { request, admit } = await open(t);
      const limits: RuleLimits = { concurrentSessions: { max: 2, key: 'Rule' } };
      const first = expectOk(await admit(request(limits)));
      expectOk(await admit(request(limits)));
      // All in one turn: refused while both slots are held, then a slot is given back.
      const before = admit(request(limits));
      first.release();
      const together = await Promise.all([before, admit(request(limits)), admit(request(limits))]);
      assert.deepEqual(
        together.map((a) => (a.ok ? 'ok' : a.reason)),
        ['ConcurrencyLimited', 'ok', 'ConcurrencyLimited'],
      );
    });

    it('lets a Session bandwidth gate pass one second of bytes at once, then delays', async (t) => {
      const { clock, request, admit } = await open(t);
      const limits: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'Session' } };
      const gate = expectOk(await admit(request(limits))).bandwidth;
      assert.ok(gate);
      const t0 = clock.now();
      assert.equal(gate.take(600, t0), 0);
      assert.equal(gate.take(400, t0), 0);
      assertNear(gate.take(100, t0), 100);
      // Both directions share the bucket: the debt is cumulative.
      assertNear(gate.take(100, t0), 200);
      // After paying the debt and 300 ms more, 300 bytes pass.
      assert.equal(gate.take(300, t0 + 500), 0);
      assertNear(gate.take(1, t0 + 500), 1);
      // A long idle refills to one second's worth, not more.
      assert.equal(gate.take(1000, t0 + 60_000), 0);
      assertNear(gate.take(500, t0 + 60_000), 500);
    });

    it('holds the long-run rate for a relay that waits the delays', async (t) => {
      const { clock, request, admit } = await open(t);
      const limits: RuleLimits = { bandwidth: { bytesPerSecond: 10_000, key: 'Session' } };
      const gate = expectOk(await admit(request(limits))).bandwidth;
      assert.ok(gate);
      let now = clock.now();
      const start = now;
      for (let i = 0; i < 200; i++) now += gate.take(1000, now); // 200 kB, 1 kB chunks
      // The first 10 kB ride the burst, the remaining 190 kB take 19 s at 10 kB/s.
      assert.ok(Math.abs(now - start - 19_000) <= 200, `took ${now - start} ms`);
    });

    it('gives each Session lease its own bucket', async (t) => {
      const { clock, request, admit } = await open(t);
      const limits: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'Session' } };
      const a = expectOk(await admit(request(limits))).bandwidth;
      const b = expectOk(await admit(request(limits))).bandwidth;
      assert.ok(a && b);
      const t0 = clock.now();
      assert.equal(a.take(1000, t0), 0);
      assert.equal(b.take(1000, t0), 0);
    });

    it('shares one bucket among leases with the same key, apart from other keys', async (t) => {
      const { clock, request, admit } = await open(t);
      const limits: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'SourceIP' } };
      const a = expectOk(await admit(request(limits, { sourceIp: '192.0.2.1' }))).bandwidth;
      const b = expectOk(await admit(request(limits, { sourceIp: '192.0.2.1', userId: 'bob' }))).bandwidth;
      const c = expectOk(await admit(request(limits, { sourceIp: '192.0.2.2' }))).bandwidth;
      assert.ok(a && b && c);
      const t0 = clock.now();
      assert.equal(a.take(800, t0), 0);
      assertNear(b.take(500, t0), 300);
      assert.equal(c.take(1000, t0), 0);
    });

    it('keeps shared bandwidth separate per rule and per key kind', async (t) => {
      const { clock, ruleId, request, admit } = await open(t);
      const byUser: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'UserID' } };
      const byRule: RuleLimits = { bandwidth: { bytesPerSecond: 1000, key: 'Rule' } };
      const gates = [
        expectOk(await admit(request(byUser, { userId: 'alice' }))).bandwidth,
        expectOk(await admit(request(byUser, { userId: '*' }))).bandwidth,
        expectOk(await admit(request(byUser, { ruleId: `${ruleId}2`, userId: 'alice' }))).bandwidth,
        expectOk(await admit(request(byRule, { ruleId: `${ruleId}|user|alice` }))).bandwidth,
      ];
      const t0 = clock.now();
      for (const gate of gates) assert.equal(gate?.take(1000, t0), 0);
    });
  });
}

/** Delays are whole ms rounded up; allow that rounding and nothing more. */
function assertNear(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) <= 1, `expected ~${expected} ms, got ${actual} ms`);
}
