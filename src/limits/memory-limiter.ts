// The in-process limiter: the embedded default (`make run`, `--policy-file`) and the model the
// Redis limiter copies. Everything is decided synchronously on the event loop, so one admission
// is atomic by construction: all limits are checked first and only then committed, and a refusal
// leaves no trace (no spent rate token, no leaked concurrency count).

import { checkGcra, isGcraIdle } from './gcra.ts';
import { buildLimitKey } from './keys.ts';
import {
  createBandwidthGate,
  createTokenBucket,
  isBucketFull,
  updateBucketRate,
  type TokenBucket,
} from './token-bucket.ts';
import type { Admission, AdmitRequest, BandwidthGate, Lease, Limiter } from './types.ts';

export interface MemoryLimiterOptions {
  /** Clock in ms; injected by tests. Default Date.now. */
  readonly now?: () => number;
  /**
   * Idle keys (full buckets, no leases) are forgotten by a sweep that runs lazily from admit()
   * at most this often, so memory tracks recent clients rather than every client ever seen.
   * Lazy rather than a timer: no handle to leak, and nothing grows while nobody is admitted.
   */
  readonly sweepIntervalMs?: number;
}

export interface MemoryLimiter extends Limiter {
  admit(req: AdmitRequest): Admission;
  close(): void;
  /** Forgets idle keys now (admit() also does this every sweepIntervalMs). */
  sweep(): void;
  /** How many keys are held, per kind; for tests and a gauge. */
  countKeys(): { rate: number; concurrency: number; bandwidth: number };
}

const DEFAULT_SWEEP_INTERVAL_MS = 10_000;

interface SharedBucket {
  readonly bucket: TokenBucket;
  leases: number;
}

const NO_OP_LEASE: Lease = Object.freeze({ release(): void {}, bandwidth: null });
const UNLIMITED: Admission = Object.freeze({ ok: true, lease: NO_OP_LEASE });
const CLOSED: Admission = Object.freeze({ ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });

/** One object per admitted session (a literal with a release closure was three). */
class MemoryLease implements Lease {
  readonly bandwidth: BandwidthGate | null;
  #concurrencyKey: string | null;
  #shared: SharedBucket | null;
  #release: ((concurrencyKey: string | null, shared: SharedBucket | null) => void) | null;

  constructor(
    bandwidth: BandwidthGate | null,
    concurrencyKey: string | null,
    shared: SharedBucket | null,
    release: (concurrencyKey: string | null, shared: SharedBucket | null) => void,
  ) {
    this.bandwidth = bandwidth;
    this.#concurrencyKey = concurrencyKey;
    this.#shared = shared;
    this.#release = release;
  }

  release(): void {
    const release = this.#release;
    if (release === null) return; // released once only
    this.#release = null;
    release(this.#concurrencyKey, this.#shared);
    this.#concurrencyKey = null;
    this.#shared = null;
  }
}

export function createMemoryLimiter(opts: MemoryLimiterOptions = {}): MemoryLimiter {
  const clock = opts.now ?? Date.now;
  const sweepIntervalMs = opts.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  const rateTats = new Map<string, number>();
  const sessionCounts = new Map<string, number>();
  const sharedBuckets = new Map<string, SharedBucket>();
  let lastSweepAt = clock();
  let closed = false;

  function sweepAt(now: number): void {
    lastSweepAt = now;
    for (const [key, tat] of rateTats) if (isGcraIdle(tat, now)) rateTats.delete(key);
    for (const [key, shared] of sharedBuckets) {
      if (shared.leases === 0 && isBucketFull(shared.bucket, now)) sharedBuckets.delete(key);
    }
    // Concurrency keys need no sweep: release() deletes a key when its count reaches zero.
  }

  function releaseSession(concurrencyKey: string | null): void {
    if (closed || concurrencyKey === null) return;
    const count = sessionCounts.get(concurrencyKey) ?? 0;
    if (count <= 1) sessionCounts.delete(concurrencyKey);
    else sessionCounts.set(concurrencyKey, count - 1);
  }

  function acquireBucket(key: string, bytesPerSecond: number, now: number): SharedBucket {
    let shared = sharedBuckets.get(key);
    if (shared === undefined) {
      shared = { bucket: createTokenBucket(bytesPerSecond, now), leases: 0 };
      sharedBuckets.set(key, shared);
    } else {
      updateBucketRate(shared.bucket, bytesPerSecond, now);
    }
    shared.leases += 1;
    return shared;
  }

  function admit(req: AdmitRequest): Admission {
    if (closed) return CLOSED;
    const { connectionRate, concurrentSessions, bandwidth } = req.limits;
    if (!connectionRate && !concurrentSessions && !bandwidth) return UNLIMITED;
    const now = clock();
    if (now - lastSweepAt >= sweepIntervalMs) sweepAt(now);

    // Decide every limit before committing any, so a refusal consumes nothing.
    let rateKey: string | null = null;
    let nextTat = 0;
    if (connectionRate) {
      rateKey = buildLimitKey(connectionRate.key, req);
      const verdict = checkGcra(rateTats.get(rateKey), now, connectionRate.perSecond, connectionRate.burst);
      if (!verdict.ok) return { ok: false, reason: 'RateLimited', retryAfterMs: verdict.retryAfterMs };
      nextTat = verdict.tat;
    }
    let concurrencyKey: string | null = null;
    let sessions = 0;
    if (concurrentSessions) {
      concurrencyKey = buildLimitKey(concurrentSessions.key, req);
      sessions = sessionCounts.get(concurrencyKey) ?? 0;
      if (sessions >= concurrentSessions.max) return { ok: false, reason: 'ConcurrencyLimited', retryAfterMs: 0 };
    }

    if (rateKey !== null) rateTats.set(rateKey, nextTat);
    if (concurrencyKey !== null) sessionCounts.set(concurrencyKey, sessions + 1);
    let shared: SharedBucket | null = null;
    let bucket: TokenBucket | null = null;
    if (bandwidth) {
      if (bandwidth.key === 'Session') {
        bucket = createTokenBucket(bandwidth.bytesPerSecond, now);
      } else {
        shared = acquireBucket(buildLimitKey(bandwidth.key, req), bandwidth.bytesPerSecond, now);
        bucket = shared.bucket;
      }
    }

    return {
      ok: true,
      lease: new MemoryLease(
        bucket === null ? null : createBandwidthGate(bucket, clock),
        concurrencyKey,
        shared,
        releaseLease,
      ),
    };
  }

  function releaseLease(concurrencyKey: string | null, shared: SharedBucket | null): void {
    releaseSession(concurrencyKey);
    if (shared !== null && !closed) shared.leases -= 1;
  }

  return {
    admit,
    close(): void {
      closed = true;
      rateTats.clear();
      sessionCounts.clear();
      sharedBuckets.clear();
    },
    sweep(): void {
      sweepAt(clock());
    },
    countKeys() {
      return { rate: rateTats.size, concurrency: sessionCounts.size, bandwidth: sharedBuckets.size };
    },
  };
}
