// The core announces what happens on diagnostics_channel; logs, metrics and tracing subscribe.
// Publishing to a channel with no subscribers costs a boolean check, so the hot path pays
// nothing for telemetry that is switched off.
import diagnostics from 'node:diagnostics_channel';
import type { Reason } from '../errors.ts';
import type { ReplyCode } from '../protocol/constants.ts';

export type SessionState = 'handshake' | 'deciding' | 'connecting' | 'binding' | 'relaying' | 'closed';

/**
 * What a Report policy (`spec.enforcement: Report`) would have decided for a session that it did
 * not decide: the rule, the action and reason, and the reply the client would have got.
 */
export interface ReportRecord {
  /** `namespace/policy/rule`. */
  readonly ruleId: string;
  /** `namespace/policy`. */
  readonly policy: string;
  readonly action: 'allow' | 'deny';
  /** RuleAllowed, RuleDenied, GuardedDestination, or the limit that would have refused (RateLimited, ConcurrencyLimited, LimiterUnavailable). */
  readonly reason: string;
  /** 90 or 91. */
  readonly reply: ReplyCode;
}

/** What subscribers may read about a session; the session object itself implements it. */
export interface SessionInfo {
  readonly id: string;
  readonly startedAt: number; // performance.now() at accept
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly state: SessionState;
  readonly command: 'connect' | 'bind' | null;
  readonly userId: string | null;
  readonly host: string | null;
  readonly destIp: string | null;
  readonly destPort: number;
  readonly ruleId: string | null;
  /** The client's namespace when it is a known pod (fleet mode), else null. */
  readonly namespace: string | null;
  /** The policy tier that decided (Cluster, Namespace, Baseline, Default); null before a decision. */
  readonly tier: string | null;
  readonly snapshotVersion: string | null;
  readonly replyCode: ReplyCode | null;
  readonly reason: Reason | null;
  /** InternalError: the exception no step expected, for the log; absent or null otherwise. */
  readonly error?: Error | null;
  /** GuardedDestination: the address class or fleet endpoint that refused (`private`, `redis`). */
  readonly guard?: string | null;
  /** Why it ended: a Reason (Draining for a drain's cut), or closed | idle | error once relaying. */
  readonly closeCause: string | null;
  readonly handshakeMs: number | null; // accept → first reply
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  /** Set when a Report policy would have decided this session; absent or null otherwise. */
  readonly report?: ReportRecord | null;
}

export interface PhaseEvent {
  session: SessionInfo;
  phase: 'dns' | 'ident' | 'limits' | 'connect' | 'bind-accept';
  startedAt: number; // performance.now()
  endedAt: number;
  error: Reason | null;
}

export interface SnapshotEvent {
  source: string;
  version: string;
  ruleCount: number;
  policyCount: number;
  loadedAt: number;
  /** W3C trace context of the publish (operator reconcile, `policy push`) when it was traced. */
  traceparent?: string;
}

export interface SourceErrorEvent {
  source: string;
  error: Error;
  /** The version still in force, or null when the source holds no rules at all. */
  keeping?: string | null;
}

export interface LimiterErrorEvent {
  error: Error;
}

/** A connection turned away at accept (draining, over a cap): it never becomes a session. */
export interface ConnectionRefusedEvent {
  reason: Reason;
}

/** A channel whose messages have one type, so publishers and subscribers are checked against it. */
export interface TypedChannel<T> {
  readonly hasSubscribers: boolean;
  publish(message: T): void;
  subscribe(onMessage: (message: T) => void): void;
  unsubscribe(onMessage: (message: T) => void): void;
}

/** node:diagnostics_channel types every message `unknown`; each channel's type is declared here, once. */
function channel<T>(name: string): TypedChannel<T> {
  return diagnostics.channel(name) as TypedChannel<T>;
}

export const channels = {
  connectionRefused: channel<ConnectionRefusedEvent>('socks4-fleet:connection:refused'),
  sessionStart: channel<SessionInfo>('socks4-fleet:session:start'),
  sessionPhase: channel<PhaseEvent>('socks4-fleet:session:phase'),
  sessionEstablished: channel<SessionInfo>('socks4-fleet:session:established'),
  sessionEnd: channel<SessionInfo>('socks4-fleet:session:end'),
  snapshotLoaded: channel<SnapshotEvent>('socks4-fleet:snapshot:loaded'),
  snapshotError: channel<SourceErrorEvent>('socks4-fleet:snapshot:error'),
  limiterError: channel<LimiterErrorEvent>('socks4-fleet:limiter:error'),
} as const;
