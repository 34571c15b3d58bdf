// The fleet-wide limiter: every pod shares connection-rate, concurrency and bandwidth budgets
// through Redis. A new session costs at most one round trip (one script decides all its limits,
// and the sessions asked meanwhile share the call: admit-batch.ts); its close costs a share of one
// ZREM per key per 5 ms, or nothing when an admission of the same key carries it into its script
// (release-queue.ts). Keys known to be over their rate are refused
// locally until their retry time, without asking. When Redis fails or is slow the configured fail mode
// decides: open (default) admits through a local in-process limiter with the same limits per
// pod; closed refuses with LimiterUnavailable. Redis calls time out quickly and the number in
// flight is capped, so a sick Redis never builds a queue on the session path.
import { randomBytes } from 'node:crypto';
import { DEFAULT_COMMAND_TIMEOUT_MS, type RedisClient } from '../redis/connection.ts';
import { checkPrefix } from '../redis/keys.ts';
import { limitKey } from './redis-keys.ts';
import { LeaseRenewer } from './lease-renewer.ts';
import { AdmitBatcher, type BatchOutcome } from './admit-batch.ts';
import { defineLimitScripts, type AdmitArgs, type AdmitReply } from './limit-scripts.ts';
import { QuotaPool } from './quota-pool.ts';
import { channels } from '../telemetry/events.ts';
import { createMemoryLimiter } from './memory-limiter.ts';
import { ReleaseQueue } from './release-queue.ts';
import { createBandwidthGate, createTokenBucket } from './token-bucket.ts';
import type { Admission, AdmitRequest, BandwidthGate, Lease, Limiter } from './types.ts';

type Outcome = BatchOutcome<AdmitReply>;

export type FailMode = 'open' | 'closed';

export interface RedisLimiterOptions {
  readonly client: RedisClient;
  readonly prefix: string;
  /** What admit() answers while Redis is unusable (default open). */
  readonly failMode?: FailMode;
  /** The local limiter used in fail-open mode (default: a fresh in-process limiter). */
  readonly fallback?: Limiter;
  /** Lease time of a concurrency slot; a crashed pod's sessions free themselves within it (default 15 s). */
  readonly leaseTtlMs?: number;
  /**
   * How long an admission waits for Redis before the fail mode decides (default: the client's
   * 500 ms command timeout). Needed besides that timeout: with auto-pipelining a call queued behind
   * a stalled pipeline starts its own timer only when sent, so it could wait twice as long.
   */
  readonly callTimeoutMs?: number;
  /** Admissions waiting on Redis at once; beyond this, the fail mode answers at once (default 1000). */
  readonly maxInFlight?: number;
  /** Local clock (ms) for bandwidth gates and cached refusals; injected by tests. */
  readonly now?: () => number;
  /** Identifies this pod's leases; default random. */
  readonly podId?: string;
}

export interface RedisLimiter extends Limiter {
  close(): Promise<void>;
  stats(): {
    inFlight: number;
    leases: number;
    pendingReleases: number;
    sharedBandwidthKeys: number;
    cachedRefusals: number;
  };
}

export const DEFAULT_LEASE_TTL_MS = 15_000;
const DEFAULT_MAX_IN_FLIGHT = 1000;
/** Cached "over the limit" keys; a flood of distinct keys cannot grow it past this. */
const MAX_CACHED_REFUSALS = 10_000;

const NO_OP_LEASE: Lease = Object.freeze({ release(): void {}, bandwidth: null });
const UNLIMITED: Admission = Object.freeze({ ok: true, lease: NO_OP_LEASE });
const UNAVAILABLE: Admission = Object.freeze({ ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });

export function createRedisLimiter(opts: RedisLimiterOptions): RedisLimiter {
  const problem = checkPrefix(opts.prefix);
  if (problem !== null) throw new Error(problem);
  const { client, prefix } = opts;
  const clock = opts.now ?? Date.now;
  const failOpen = (opts.failMode ?? 'open') === 'open';
  const fallback = opts.fallback ?? createMemoryLimiter({ now: clock });
  const ttlMs = opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const podId = opts.podId ?? randomBytes(6).toString('hex');
  const scripts = defineLimitScripts(client);
  const report = (error: Error): void => {
    if (channels.limiterError.hasSubscribers) channels.limiterError.publish({ error });
  };
  // While Redis is away there is nothing to renew; the first tick after it is back re-adds
  // every lease this pod holds (a restarted, empty Redis included).
  const renew = (key: string, ttl: number, members: readonly string[]): Promise<unknown> =>
    client.status === 'ready' ? scripts.renew(key, ttl, members) : Promise.resolve(0);
  const renewer = new LeaseRenewer({ ttlMs, renew, onError: report });
  // Best effort: a release that fails expires with its lease within the TTL.
  const releases = new ReleaseQueue((key, members) => {
    if (client.status === 'ready') scripts.release(key, members).catch(report);
  });
  // In flight until Redis answers or ioredis gives up, even when the deadline decided first.
  const batcher = new AdmitBatcher<AdmitArgs, AdmitReply>({
    send: scripts.admit,
    timeoutMs: callTimeoutMs,
    // A slot granted after the deadline would be held by nobody until its lease expired.
    onLate: (args, late) => {
      if (late.code === 0 && args.sessions !== null) releases.add(args.sessions.key, args.sessions.member);
    },
  });
  const quotas = new QuotaPool({ grant: scripts.grant, clock, failOpen, onError: report });
  /** rate key → local time until which Redis said it is over the limit. */
  const refusals = new Map<string, number>();
  let closed = false;

  function unavailable(req: AdmitRequest, error: Error): Admission | Promise<Admission> {
    report(error);
    return failOpen ? fallback.admit(req) : UNAVAILABLE;
  }

  function cacheRefusal(key: string, until: number): void {
    if (refusals.size >= MAX_CACHED_REFUSALS) {
      const now = clock();
      for (const [k, t] of refusals) if (t <= now) refusals.delete(k);
      if (refusals.size >= MAX_CACHED_REFUSALS) refusals.clear();
    }
    refusals.set(key, until);
  }

  function buildLease(
    req: AdmitRequest,
    sessionsKey: string | null,
    member: string,
    bandwidthKey: string | null,
    granted: number,
  ): Lease {
    if (sessionsKey !== null) renewer.add(sessionsKey, member);
    const bandwidth = req.limits.bandwidth;
    let gate: BandwidthGate | null = null;
    if (bandwidth !== undefined) {
      gate =
        bandwidthKey === null
          ? createBandwidthGate(createTokenBucket(bandwidth.bytesPerSecond, clock()), clock)
          : quotas.acquire(bandwidthKey, bandwidth.bytesPerSecond, granted);
    }
    let released = false;
    return {
      bandwidth: gate,
      release(): void {
        if (released) return;
        released = true;
        if (bandwidthKey !== null) quotas.release(bandwidthKey);
        if (sessionsKey === null || closed) return;
        renewer.remove(sessionsKey, member);
        releases.add(sessionsKey, member);
      },
    };
  }

  // One answer per admission, whichever batch it rode in: a deadline past, a refusal, a lease.
  function answer(
    req: AdmitRequest,
    args: AdmitArgs,
    bandwidthKey: string | null,
    outcome: Outcome,
  ): Admission | Promise<Admission> {
    if (outcome.error !== undefined) return unavailable(req, outcome.error);
    const reply = outcome.reply;
    if (reply.code === 1) {
      if (args.rate !== null) cacheRefusal(args.rate.key, clock() + reply.retryAfterMs);
      return { ok: false, reason: 'RateLimited', retryAfterMs: reply.retryAfterMs };
    }
    if (reply.code === 2) return { ok: false, reason: 'ConcurrencyLimited', retryAfterMs: 0 };
    if (reply.code === 3) return unavailable(req, new Error(reply.error));
    const sessions = args.sessions;
    if (closed) {
      if (sessions !== null) scripts.release(sessions.key, [sessions.member]).catch(report);
      return UNAVAILABLE;
    }
    // If another session of this pod created the key's bucket meanwhile, the grant joins it.
    return {
      ok: true,
      lease: buildLease(
        req,
        sessions?.key ?? null,
        sessions?.member ?? '',
        bandwidthKey,
        args.bandwidth === null ? 0 : reply.granted,
      ),
    };
  }

  function admit(req: AdmitRequest): Admission | Promise<Admission> {
    if (closed) return UNAVAILABLE;
    const { connectionRate, concurrentSessions, bandwidth } = req.limits;
    if (!connectionRate && !concurrentSessions && !bandwidth) return UNLIMITED;
    let rate: AdmitArgs['rate'] = null;
    if (connectionRate) {
      const key = limitKey(prefix, 'rate', connectionRate.key, req);
      const until = refusals.get(key);
      if (until !== undefined) {
        const now = clock();
        if (until > now) return { ok: false, reason: 'RateLimited', retryAfterMs: Math.ceil(until - now) };
        refusals.delete(key);
      }
      rate = { key, perSecond: connectionRate.perSecond, burst: connectionRate.burst };
    }
    const member = `${podId}:${req.sessionId}`;
    const sessionsKey = concurrentSessions ? limitKey(prefix, 'sessions', concurrentSessions.key, req) : null;
    const bandwidthKey =
      bandwidth && bandwidth.key !== 'Session' ? limitKey(prefix, 'bandwidth', bandwidth.key, req) : null;
    // A pod already holding a bucket for the key shares it; only a new bucket needs a first grant.
    const grant: AdmitArgs['bandwidth'] =
      bandwidth && bandwidthKey !== null && !quotas.has(bandwidthKey)
        ? { key: bandwidthKey, bytesPerSecond: bandwidth.bytesPerSecond, want: bandwidth.bytesPerSecond }
        : null;
    if (rate === null && sessionsKey === null && grant === null)
      return { ok: true, lease: buildLease(req, null, member, bandwidthKey, 0) };
    if (client.status !== 'ready') return unavailable(req, new Error(`Redis is ${client.status}`));
    if (batcher.inFlight >= maxInFlight)
      return unavailable(req, new Error(`${batcher.inFlight} Redis calls in flight`));
    // Taken only now that the call goes out: they ride in the script instead of a ZREM each.
    const carried = sessionsKey === null ? undefined : releases.take(sessionsKey);
    const sessions: AdmitArgs['sessions'] =
      concurrentSessions && sessionsKey !== null
        ? {
            key: sessionsKey,
            max: concurrentSessions.max,
            member,
            ttlMs,
            ...(carried === undefined ? {} : { releases: carried }),
          }
        : null;
    const args: AdmitArgs = { rate, sessions, bandwidth: grant };
    // Every key of one rule shares its hash tag; a single Redis takes any keys in one script.
    const group = client.isCluster ? req.ruleId : '';
    return batcher.admit(group, args).then((outcome) => answer(req, args, bandwidthKey, outcome));
  }

  return {
    admit,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      quotas.close();
      const held = renewer.close();
      const released = releases.drain();
      await fallback.close();
      // Hand slots back now rather than make the fleet wait out the lease time.
      if (client.status !== 'ready') return;
      await Promise.allSettled([...held, ...released].map(([key, members]) => client.zrem(key, ...members)));
    },
    stats() {
      return {
        inFlight: batcher.inFlight,
        leases: renewer.size,
        pendingReleases: releases.size,
        sharedBandwidthKeys: quotas.size,
        cachedRefusals: refusals.size,
      };
    },
  };
}
