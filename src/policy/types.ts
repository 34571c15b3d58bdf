// The `Socks4Policy` document (socks4-fleet.io/v1alpha1) as users write it, and the shapes the
// evaluator hands to the server. Field names are public API (docs/reference.md, "Socks4Policy fields").

import { Reason } from '../errors.ts';
import type { FleetEndpoints } from './fleet-endpoints.ts';
import type { GuardedRange } from './guard.ts';

// The one home of the API's names: the policy loader, the operator and its Kubernetes client read them here.
export const GROUP = 'socks4-fleet.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const KIND = 'Socks4Policy';
/** Cluster-scoped: evaluated before every namespace's policies and governs every client. */
export const CLUSTER_KIND = 'ClusterSocks4Policy';
export type PolicyKind = typeof KIND | typeof CLUSTER_KIND;
export const DEFAULT_NAMESPACE = 'default';
export const DEFAULT_PRIORITY = 1000;

/** `Pass` (ClusterSocks4Policy only) skips the rest of the cluster tier: the namespace decides. */
export const RuleAction = { Allow: 'Allow', Deny: 'Deny', Pass: 'Pass' } as const;
export type RuleAction = (typeof RuleAction)[keyof typeof RuleAction];

export const RuleCommand = { Connect: 'Connect', Bind: 'Bind' } as const;
export type RuleCommand = (typeof RuleCommand)[keyof typeof RuleCommand];

/**
 * `spec.enforcement`. A Report policy is evaluated in its place and what it would have decided
 * is recorded, but evaluation goes on as if it were absent (README, "Rolling out a policy").
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

/**
 * Where a ClusterSocks4Policy sits, as AdminNetworkPolicy and BaselineAdminNetworkPolicy do:
 * `Admin` (default) before the namespaces, `Baseline` after them.
 */
export const ClusterTier = { Admin: 'Admin', Baseline: 'Baseline' } as const;
export type ClusterTier = (typeof ClusterTier)[keyof typeof ClusterTier];

export interface PolicySpec {
  readonly priority?: number;
  /** Default Enforce; Report records what the policy would decide and decides nothing. */
  readonly enforcement?: Enforcement;
  /** ClusterSocks4Policy only. */
  readonly tier?: ClusterTier;
  readonly rules: readonly PolicyRule[];
}

/** A Socks4Policy or a ClusterSocks4Policy (the same spec; the cluster kind has no namespace). */
export interface Socks4Policy {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: PolicyKind;
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
  /** `namespace/name` of a Socks4Policy, `name` of a ClusterSocks4Policy (see policyId). */
  readonly policy: string;
  /** The rule's name within its policy. */
  readonly name: string;
  /** `<policy>/ruleName`. */
  readonly id: string;
}

/** `namespace/name`: how a namespaced object is keyed (as in Kubernetes' own informer caches). */
export function namespacedKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * A policy's id everywhere (compile order, rule ids and limit keys, Report keys, diff, the
 * operator's caches): `namespace/name`, or `name` alone for the cluster kind. Names hold no '/',
 * so ids never collide.
 */
export function policyId(p: {
  readonly kind?: unknown;
  readonly metadata: { readonly name?: unknown; readonly namespace?: unknown };
}): string {
  const name = String(p.metadata.name ?? '');
  if (p.kind === CLUSTER_KIND) return name;
  const ns = p.metadata.namespace;
  return namespacedKey(typeof ns === 'string' && ns !== '' ? ns : DEFAULT_NAMESPACE, name);
}

/**
 * Which tier decided (README "Tenancy"): cluster policies, then the client's namespace, then
 * baseline cluster policies, then the default deny.
 */
export const PolicyTier = {
  Cluster: 'Cluster',
  Namespace: 'Namespace',
  Baseline: 'Baseline',
  Default: 'Default',
} as const;
export type PolicyTier = (typeof PolicyTier)[keyof typeof PolicyTier];

/**
 * How namespaced policies apply. `Shared`: to every client (a policy file, `policy push`: there
 * are no pods to attribute). `Namespaced`: only to pods of their namespace (the operator's fleet).
 */
export const Tenancy = { Shared: 'Shared', Namespaced: 'Namespaced' } as const;
export type Tenancy = (typeof Tenancy)[keyof typeof Tenancy];

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
  /**
   * The client's namespace when it is a pod of the cluster; null or absent when it is not. Read
   * only by a Namespaced set: in a Shared one every namespaced policy applies to every client.
   */
  readonly namespace?: string | null;
}

export type UnresolvedContext = Omit<EvalContext, 'destIp'>;

/**
 * A refusal's reasons are taken from the error registry (src/errors.ts), so a deny decision's
 * reason is a `Reason` by type and the session refuses with it as it is. `RuleAllowed` is no
 * refusal and so not in the registry; only an allow decision carries it.
 */
export const DecisionReason = {
  RuleAllowed: 'RuleAllowed',
  RuleDenied: Reason.RuleDenied,
  NoRuleMatched: Reason.NoRuleMatched,
  GuardedDestination: Reason.GuardedDestination,
} as const;
export type DecisionReason = (typeof DecisionReason)[keyof typeof DecisionReason];
/** The reasons a deny decision carries: a subset of `Reason`. */
export type DenyReason = Exclude<DecisionReason, typeof DecisionReason.RuleAllowed>;

export type Decision = AllowDecision | DenyDecision;

export interface AllowDecision extends DecisionFields {
  readonly action: 'allow';
  readonly reason: typeof DecisionReason.RuleAllowed;
}

export interface DenyDecision extends DecisionFields {
  readonly action: 'deny';
  readonly reason: DenyReason;
}

interface DecisionFields {
  /** The tier of the deciding rule; Default when none matched. */
  readonly tier: PolicyTier;
  readonly rule: RuleRef | null;
  readonly ident: IdentMode;
  readonly limits: RuleLimits | null;
  /** Set when the SSRF guard refused: the address class or fleet endpoint it fell under. */
  readonly guard?: GuardedRange;
}
