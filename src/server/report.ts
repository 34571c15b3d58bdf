// The session's side of report mode: turning what a Report policy would have decided into the
// record telemetry reads, and the limits such a rule would have applied. Report limits are counted
// by the same limiter as enforced ones (so the counts are real, fleet-wide with Redis) but their
// verdict only changes the record, never the session.
import type { Admission, RefusalReason, RuleLimits } from '../limits/types.ts';
import type { Decision } from '../policy/types.ts';
import { ReplyCode } from '../protocol/constants.ts';
import type { ReportRecord } from '../telemetry/events.ts';

export function reportRecordFor(would: Decision & { rule: NonNullable<Decision['rule']> }): ReportRecord {
  return {
    ruleId: would.rule.id,
    policy: would.rule.policy,
    action: would.action,
    reason: would.reason,
    // Report rules never run ident, so only 90 and 91 are possible here.
    reply: would.action === 'allow' ? ReplyCode.Granted : ReplyCode.Rejected,
  };
}

/** The record once a limit of the Report rule would have refused the session. */
export function reportRefusedByLimit(record: ReportRecord, reason: RefusalReason): ReportRecord {
  return { ...record, action: 'deny', reason, reply: ReplyCode.Rejected };
}

/**
 * The limits a Report rule counts: connection rate and concurrent sessions. Bandwidth is left out
 * on purpose: a bucket that never throttles would only measure what the relay already counts.
 */
export function reportLimits(limits: RuleLimits | null): RuleLimits | null {
  if (limits === null) return null;
  const { connectionRate, concurrentSessions } = limits;
  if (connectionRate === undefined && concurrentSessions === undefined) return null;
  return {
    ...(connectionRate === undefined ? {} : { connectionRate }),
    ...(concurrentSessions === undefined ? {} : { concurrentSessions }),
  };
}

/** A limiter that throws has admitted no one; for a Report rule that is recorded, not obeyed. */
export const UNAVAILABLE: Admission = Object.freeze({ ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
