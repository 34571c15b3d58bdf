// The limiter seam: the session asks once per new session, after the policy allowed it, and
// gets a lease that it holds until close. The in-process limiter (embedded mode) and the Redis
// limiter (fleet-wide) implement this and pass test/limits/limiter-contract.ts.
import type { Reason } from '../errors.ts';

/** Who shares a connection-rate or concurrency budget within one rule. */
export type LimitKey = 'SourceIP' | 'UserID' | 'Rule';
/** Who shares a bandwidth bucket: one session alone, or everyone with the same key. */
export type BandwidthKey = 'Session' | LimitKey;

/**
 * A rule's `limits`, structurally the same as the policy schema's (src/policy/types.ts), declared
 * here so the limiters do not depend on the policy module. Values are validated there:
 * perSecond > 0, burst >= 1, max >= 1, bytesPerSecond > 0.
 */
export interface RuleLimits {
  readonly connectionRate?: { readonly perSecond: number; readonly burst: number; readonly key: LimitKey };
  readonly concurrentSessions?: { readonly max: number; readonly key: LimitKey };
  readonly bandwidth?: { readonly bytesPerSecond: number; readonly key: BandwidthKey };
}

export interface AdmitRequest {
  /** Stable id of the rule that allowed the session (RuleRef.id); scopes every limit key. */
  readonly ruleId: string;
  readonly limits: RuleLimits;
  readonly sourceIp: string;
  readonly userId: string;
  readonly sessionId: string;
}

/** A limiter's refusals, taken from the error registry so the session refuses with them as they are. */
export type RefusalReason =
  | typeof Reason.RateLimited
  | typeof Reason.ConcurrencyLimited
  | typeof Reason.LimiterUnavailable;

export type Admission =
  | { readonly ok: true; readonly lease: Lease }
  | {
      readonly ok: false;
      readonly reason: RefusalReason;
      /** When a retry could succeed; 0 when unknown (concurrency waits on someone's release). */
      readonly retryAfterMs: number;
    };

export interface Lease {
  /** Gives the concurrency slots back. Idempotent: the session may call it from several paths. */
  release(): void;
  /** Null when the rule has no bandwidth limit. Both relay directions take from the same gate. */
  readonly bandwidth: BandwidthGate | null;
}

export interface BandwidthGate {
  /**
   * Accounts `bytes` about to be relayed. Returns 0 when they may be sent now, otherwise the
   * delay in ms before they may: the relay holds the chunk and pauses reading the source that
   * long. Bytes are always accounted, so a caller that waits the delay stays within the rate.
   */
  take(bytes: number, now?: number): number;
}

export interface Limiter {
  /** The in-process limiter answers synchronously; only remote limiters return a Promise. */
  admit(req: AdmitRequest): Admission | Promise<Admission>;
  /** Stops timers and connections; leases already handed out stay harmless to release. */
  close(): void | Promise<void>;
}
