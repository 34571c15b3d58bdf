// The operator's decisions, pure: from the policies the informer observed and the snapshot last
// published, compute the next snapshot and, per policy, what to do (finalizer, status, events).
// Time comes in as an argument; nothing here talks to Kubernetes or Redis (operator/controller.ts
// carries the decisions out). Validation is the proxy's own (src/policy), so the operator never
// publishes anything a pod would refuse.
import type { POLICY_STATUS } from '../src/policy/schema.ts';
import type { Assert, Deep, Same, SchemaType } from '../src/policy/schema-types.ts';
import { validatePolicy, formatIssue } from '../src/policy/validate.ts';
import {
  API_VERSION,
  CLUSTER_KIND,
  DEFAULT_ENFORCEMENT,
  DEFAULT_NAMESPACE,
  Enforcement,
  KIND,
  policyId,
  type Issue,
  type Socks4Policy,
} from '../src/policy/types.ts';
import { stringifyCanonical } from '../src/rules/snapshot-document.ts';
import {
  ConditionStatus,
  ConditionType,
  findCondition,
  readConditions,
  ReadyReason,
  setCondition,
  truncateMessage,
  type Condition,
} from './conditions.ts';

/** Held by every policy the operator may publish: deleting it waits until it left the snapshot. */
export const FINALIZER = 'socks4-fleet.io/snapshot-cleanup';

/** A Socks4Policy as the API server returns it; the spec is untrusted until validated. */
export interface ObservedPolicy {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly generation?: number;
    readonly resourceVersion?: string;
    readonly finalizers?: readonly string[];
    readonly deletionTimestamp?: string | Date;
  };
  readonly spec?: unknown;
  readonly status?: unknown;
}

export interface PolicyStatus {
  readonly observedGeneration: number;
  /** Rules of this policy in the published snapshot (0 when it is not published). */
  readonly ruleCount: number;
  /** The snapshot that first carried what is published of this policy. */
  readonly snapshotVersion?: string;
  /** How the fleet applies what is published of this policy: Enforce, or Report (recorded only). */
  readonly enforcement?: Enforcement;
  readonly conditions: readonly Condition[];
}

// Compile-time proof that PolicyStatus is the CRD's `status` (src/policy/schema.ts): the same
// fields, types and values (conditions included). Only optionality differs: the schema requires no
// field (a stored status may predate one), the operator always writes three. Nothing here runs.
export type PolicyStatusCheck = Assert<Same<Deep<Partial<PolicyStatus>>, Deep<SchemaType<typeof POLICY_STATUS>>>>;

/** One policy as it stands in the published snapshot. */
export interface PublishedEntry {
  readonly uid: string | null;
  /** null when learned from a snapshot read back from Redis (snapshots carry no generations). */
  readonly generation: number | null;
  readonly ruleCount: number;
  readonly policy: Socks4Policy;
  /** True when the current generation is invalid and this older one stays published. */
  readonly kept: boolean;
  /** The snapshot version that first carried this generation (null until published). */
  readonly since: string | null;
}

export interface PublishedSnapshot {
  readonly version: string;
  readonly entries: ReadonlyMap<string, PublishedEntry>;
}

export interface DesiredSnapshot {
  /** In key order; publishSnapshot sorts and normalises again. */
  readonly policies: readonly Socks4Policy[];
  readonly entries: ReadonlyMap<string, PublishedEntry>;
}

export type Assessment =
  | { readonly ok: true; readonly policy: Socks4Policy; readonly ruleCount: number }
  | { readonly ok: false; readonly issues: readonly Issue[] };

export type PolicyAction = 'none' | 'add-finalizer' | 'remove-finalizer' | 'await-snapshot';

export interface PolicyEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface PolicyPlan {
  readonly action: PolicyAction;
  /** The status to write, or null when the current one is right (or cannot be known yet). */
  readonly status: PolicyStatus | null;
  readonly event: PolicyEvent | null;
}

export function hasFinalizer(obj: ObservedPolicy): boolean {
  return obj.metadata.finalizers?.includes(FINALIZER) === true;
}

export function isDeleting(obj: ObservedPolicy): boolean {
  return obj.metadata.deletionTimestamp !== undefined && obj.metadata.deletionTimestamp !== null;
}

// Informer objects are replaced, never mutated, on every change: identity is a safe cache key,
// and the snapshot planner re-validates only what changed.
const assessments = new WeakMap<ObservedPolicy, Assessment>();

/** Validates what the user wrote (spec, name, namespace), not the server's bookkeeping. */
export function assessPolicy(obj: ObservedPolicy): Assessment {
  const cached = assessments.get(obj);
  if (cached !== undefined) return cached;
  const cluster = obj.kind === CLUSTER_KIND;
  const doc = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: cluster
      ? { name: obj.metadata.name }
      : { name: obj.metadata.name, namespace: obj.metadata.namespace ?? DEFAULT_NAMESPACE },
    spec: obj.spec,
  };
  const issues = validatePolicy(doc);
  const result: Assessment =
    issues.length > 0
      ? { ok: false, issues }
      : {
          ok: true,
          policy: {
            apiVersion: API_VERSION,
            kind: cluster ? CLUSTER_KIND : KIND,
            metadata: doc.metadata as Socks4Policy['metadata'],
            spec: obj.spec as Socks4Policy['spec'],
          },
          ruleCount: (obj.spec as Socks4Policy['spec']).rules.length,
        };
  assessments.set(obj, result);
  return result;
}

function sameUid(entry: PublishedEntry, obj: ObservedPolicy): boolean {
  return entry.uid === null || entry.uid === (obj.metadata.uid ?? null);
}

/**
 * The snapshot the fleet should hold: every watched policy that carries the finalizer and is not
 * being deleted. A policy whose current generation is invalid keeps its previously published
 * version, because dropping a Deny policy over a typo would open what it closed. Only deletion
 * (or leaving the watched namespaces) takes a policy out.
 */
export function planSnapshot(observed: readonly ObservedPolicy[], previous: PublishedSnapshot | null): DesiredSnapshot {
  const entries = new Map<string, PublishedEntry>();
  for (const obj of [...observed].sort((a, b) => compareKeys(policyId(a), policyId(b)))) {
    if (isDeleting(obj)) continue;
    const key = policyId(obj);
    const before = previous?.entries.get(key);
    if (!hasFinalizer(obj)) {
      // New policies wait for the finalizer; one already in the fleet (published before this
      // operator started, say) stays as published until its finalizer is back.
      if (before !== undefined && sameUid(before, obj)) entries.set(key, before);
      continue;
    }
    const assessment = assessPolicy(obj);
    const generation = obj.metadata.generation ?? 0;
    if (assessment.ok) {
      const unchanged =
        before !== undefined && !before.kept && before.generation === generation && sameUid(before, obj);
      entries.set(key, {
        uid: obj.metadata.uid ?? null,
        generation,
        ruleCount: assessment.ruleCount,
        policy: assessment.policy,
        kept: false,
        since: unchanged ? before.since : null,
      });
    } else if (before !== undefined && sameUid(before, obj)) {
      entries.set(key, { ...before, kept: true });
    }
  }
  return { policies: [...entries.values()].map((e) => e.policy), entries };
}

/**
 * The published state after `desired` went out as `version`. An entry new in this snapshot is
 * dated by it, unless the policy's own status already names the snapshot that carried this very
 * generation (after an operator restart), so a restart rewrites no statuses.
 */
export function recordPublished(
  desired: DesiredSnapshot,
  version: string,
  observed: ReadonlyMap<string, ObservedPolicy>,
): PublishedSnapshot {
  const entries = new Map<string, PublishedEntry>();
  for (const [key, entry] of desired.entries) {
    if (entry.since !== null) {
      entries.set(key, entry);
      continue;
    }
    const claimed = entry.kept ? null : claimedSnapshot(observed.get(key), entry.generation);
    entries.set(key, { ...entry, since: claimed ?? version });
  }
  return { version, entries };
}

function claimedSnapshot(obj: ObservedPolicy | undefined, generation: number | null): string | null {
  if (obj === undefined || generation === null) return null;
  const status = readStatus(obj.status);
  const ready = findCondition(status?.conditions, ConditionType.Ready);
  if (status === null || status.observedGeneration !== generation || ready?.status !== ConditionStatus.True)
    return null;
  return status.snapshotVersion ?? null;
}

/** Entries of a snapshot read back from Redis: what to keep for policies that are now invalid. */
export function entriesFromSnapshot(version: string, policies: readonly Socks4Policy[]): PublishedSnapshot {
  const entries = new Map<string, PublishedEntry>();
  for (const policy of policies) {
    const key = policyId(policy);
    entries.set(key, {
      uid: null,
      generation: null,
      ruleCount: policy.spec.rules.length,
      policy,
      kept: false,
      since: version,
    });
  }
  return { version, entries };
}

/**
 * One policy's next step, in the order a kubebuilder reconciler takes them: deleting → wait
 * until it left the snapshot, then drop the finalizer; ensure the finalizer; then status.
 * `published` is null until this operator published (or read back) a snapshot: until then
 * nothing is known about what the fleet holds, so nothing is claimed.
 */
export function planPolicy(obj: ObservedPolicy, published: PublishedSnapshot | null, now: Date): PolicyPlan {
  const key = policyId(obj);
  if (isDeleting(obj)) {
    if (!hasFinalizer(obj)) return NOTHING;
    if (published === null || published.entries.has(key))
      return { action: 'await-snapshot', status: null, event: null };
    return { action: 'remove-finalizer', status: null, event: null };
  }
  if (!hasFinalizer(obj)) return { action: 'add-finalizer', status: null, event: null };
  if (published === null) return NOTHING;

  const generation = obj.metadata.generation ?? 0;
  const entry = published.entries.get(key);
  const current = readStatus(obj.status);
  const conditions = current?.conditions ?? [];
  const assessment = assessPolicy(obj);
  let desired: PolicyStatus;
  let event: PolicyEvent | null = null;
  if (assessment.ok) {
    // Not yet in a snapshot: the snapshot reconcile re-queues this policy once it is.
    if (entry === undefined || entry.kept || entry.generation !== generation || entry.since === null) return NOTHING;
    const enforcement = enforcementOf(entry.policy);
    desired = {
      observedGeneration: generation,
      ruleCount: entry.ruleCount,
      snapshotVersion: entry.since,
      enforcement,
      conditions: setCondition(
        conditions,
        {
          type: ConditionType.Ready,
          status: ConditionStatus.True,
          reason: ReadyReason.Published,
          message: `published in rules snapshot ${entry.since}${enforcement === Enforcement.Report ? REPORT_NOTE : ''}`,
          observedGeneration: generation,
        },
        now,
      ),
    };
  } else {
    const kept = entry !== undefined && sameUid(entry, obj) ? entry : undefined;
    const fate =
      kept === undefined
        ? 'not published'
        : `the fleet keeps ${kept.generation === null ? 'the version published before' : `generation ${kept.generation}`}`;
    const message = truncateMessage(`${assessment.issues.map(formatIssue).join('; ')} (${fate})`);
    desired = {
      observedGeneration: generation,
      ruleCount: kept?.ruleCount ?? 0,
      ...(kept === undefined || kept.since === null ? {} : { snapshotVersion: kept.since }),
      ...(kept === undefined ? {} : { enforcement: enforcementOf(kept.policy) }),
      conditions: setCondition(
        conditions,
        {
          type: ConditionType.Ready,
          status: ConditionStatus.False,
          reason: ReadyReason.InvalidSpec,
          message,
          observedGeneration: generation,
        },
        now,
      ),
    };
    const before = findCondition(conditions, ConditionType.Ready);
    if (
      before?.reason !== ReadyReason.InvalidSpec ||
      before.message !== message ||
      before.observedGeneration !== generation
    ) {
      event = { type: 'Warning', reason: ReadyReason.InvalidSpec, message };
    }
  }
  if (current !== null && sameStatus(current, desired)) return NOTHING;
  return { action: 'none', status: desired, event };
}

/** Appended to a Report policy's Ready message: Ready means published, not obeyed. */
export const REPORT_NOTE = ' in Report mode: the fleet records what it would decide and enforces nothing of it';

function enforcementOf(policy: Socks4Policy): Enforcement {
  return policy.spec.enforcement ?? DEFAULT_ENFORCEMENT;
}

function readEnforcement(value: unknown): { enforcement: Enforcement } | Record<string, never> {
  return value === Enforcement.Enforce || value === Enforcement.Report ? { enforcement: value } : {};
}

const NOTHING: PolicyPlan = Object.freeze({ action: 'none', status: null, event: null });

export function needsWork(plan: PolicyPlan): boolean {
  return plan.action !== 'none' || plan.status !== null;
}

/** The operator's fields of a status, or null when there is none yet. */
export function readStatus(status: unknown): PolicyStatus | null {
  if (typeof status !== 'object' || status === null) return null;
  const s = status as Record<string, unknown>;
  return {
    observedGeneration: typeof s.observedGeneration === 'number' ? s.observedGeneration : -1,
    ruleCount: typeof s.ruleCount === 'number' ? s.ruleCount : -1,
    ...(typeof s.snapshotVersion === 'string' ? { snapshotVersion: s.snapshotVersion } : {}),
    ...readEnforcement(s.enforcement),
    conditions: readConditions(status),
  };
}

export function sameStatus(a: PolicyStatus, b: PolicyStatus): boolean {
  return stringifyCanonical(a) === stringifyCanonical(b);
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
