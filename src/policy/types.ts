// The `Socks4Policy` document (socks4-fleet.io/v1alpha1) as users write it, and the shapes the
// evaluator hands to the server. Field names are public API (design brief, "Policy contract").

import type { FleetEndpoints } from './fleet-endpoints.ts';
import type { GuardedRange } from './guard.ts';

export const API_VERSION = 'socks4-fleet.io/v1alpha1';
export const KIND = 'Socks4Policy';
export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_PRIORITY = 1000;

export const RuleAction = { Allow: 'Allow', Deny: 'Deny' } as const;
export type RuleAction = (typeof RuleAction)[keyof typeof RuleAction];

export const RuleCommand = { Connect: 'Connect', Bind: 'Bind' } as const;
export type RuleCommand = (typeof RuleCommand)[keyof typeof RuleCommand];

/**
 * `spec.enforcement`. A Report policy is evaluated in its place and what it would have decided
 * is recorded, but evaluation goes on as if it were absent (design brief, "Policy contract").
 */
export const Enforcement = { Enforce: 'Enforce', Report: 'Report' } as const;
export type Enforcement = (typeof Enforcement)[keyof typeof Enforcement];
export const DEFAULT_ENFORCEMENT: Enforcement = Enforcement.Enforce;

export const IdentMode = { Off: 'Off', Optional: 'Optional', Required: 'Required' } as const;
export type IdentMode = (typeof IdentMode)[keyof typeof IdentMode];

/** Who shares a connection-rate or concurrency budget. */
export const LimitKey = { SourceIP: 'SourceIP', UserID: 'UserID', Rule: 'Rule' } as const;
export type LimitKey = (typeof LimitKey)[keyof typeof LimitKey];

/** Who shares a bandwidth budget; `Session` gives every session its own bucket. */
export const BandwidthKey = { Session: 'Session', SourceIP: 'SourceIP', UserID: 'UserID', Rule: 'Rule' } as const;
export type BandwidthKey = (typeof BandwidthKey)[keyof typeof BandwidthKey];

export interface ConnectionRateLimit {
  readonly perSecond: number;
  readonly burst: number;
  readonly key: LimitKey;
}

export interface ConcurrentSessionsLimit {
  readonly max: number;
  readonly key: LimitKey;
}

export interface BandwidthLimit {
  readonly bytesPerSecond: number;
  readonly key: BandwidthKey;
}

export interface RuleLimits {
  readonly connectionRate?: ConnectionRateLimit;
  readonly concurrentSessions?: ConcurrentSessionsLimit;
  readonly bandwidth?: BandwidthLimit;
}

export interface RuleSource {
  readonly cidrs?: readonly string[];
  readonly userids?: readonly string[];
}

export interface RuleDestination {
  readonly cidrs?: readonly string[];
  readonly hosts?: readonly string[];
  readonly ports?: readonly string[];
}

export interface PolicyRule {
  readonly name: string;
  readonly action: RuleAction;
  readonly commands?: readonly RuleCommand[];
  readonly from?: RuleSource;
  readonly to?: RuleDestination;
  readonly ident?: IdentMode;
  readonly limits?: RuleLimits;
}

export interface PolicyMetadata {
  readonly name: string;
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly generation?: number;
  readonly resourceVersion?: string;
  readonly uid?: string;
}

export interface PolicySpec {
  readonly priority?: number;
  /** Default Enforce; Report records what the policy would decide and decides nothing. */
  readonly enforcement?: Enforcement;
  readonly rules: readonly PolicyRule[];
}

export interface Socks4Policy {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: typeof KIND;
  readonly metadata: PolicyMetadata;
  readonly spec: PolicySpec;
  /** Written by the operator; ignored by validation and compilation. */
  readonly status?: unknown;
}

/** A validation finding; `path` names the field (`spec.rules[2].to.ports[0]`). */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** Identifies the rule that decided; `id` is stable across reloads and used in limit keys. */
export interface RuleRef {
  /** `namespace/name` of the policy. */
  readonly policy: string;
  /** The rule's name within its policy. */
  readonly name: string;
  /** `namespace/name/ruleName`. */
  readonly id: string;
}

export type EvalCommand = 'connect' | 'bind';

/** Everything a decision depends on; addresses are strings as the socket layer reports them. */
export interface EvalContext {
  readonly command: EvalCommand;
  /** Client address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is accepted. */
  readonly sourceIp: string;
  readonly userId: string;
  /** The SOCKS4a host name, or null for a plain SOCKS4 request. */
  readonly host: string | null;
  /** The address the proxy will connect to (resolved for SOCKS4a). */
  readonly destIp: string;
  readonly destPort: number;
  /** The proxy's own addresses: guarded even inside an opened class, opened only by their /32. */
  readonly selfAddresses: ReadonlySet<string>;
  /** The fleet's Redis, Kubernetes API and `--guard-endpoint`s: guarded like self addresses. */
  readonly fleet?: FleetEndpoints | null;
}

export type UnresolvedContext = Omit<EvalContext, 'destIp'>;

export const DecisionReason = {
  RuleAllowed: 'RuleAllowed',
  RuleDenied: 'RuleDenied',
  NoRuleMatched: 'NoRuleMatched',
  GuardedDestination: 'GuardedDestination',
} as const;
export type DecisionReason = (typeof DecisionReason)[keyof typeof DecisionReason];

export interface Decision {
  readonly action: 'allow' | 'deny';
  readonly reason: DecisionReason;
  readonly rule: RuleRef | null;
  readonly ident: IdentMode;
  readonly limits: RuleLimits | null;
  /** Set when the SSRF guard refused: the address class or fleet endpoint it fell under. */
  readonly guard?: GuardedRange;
}
