// The rules snapshot as stored in Redis: one JSON document holding every policy, normalized, with
// a content-derived version. Pure: the publisher (`policy push`, the operator) builds it and every
// pod parses it back with the same validation and compiler, so a snapshot the publisher accepts
// is one the pods accept, and a corrupt or foreign one is refused rather than half-applied.
import { createHash } from 'node:crypto';
import { compilePolicies } from '../policy/compile.ts';
import {
  CLUSTER_KIND,
  DEFAULT_NAMESPACE,
  DEFAULT_PRIORITY,
  Enforcement,
  policyId,
  Tenancy,
  type Issue,
  type Socks4Policy,
} from '../policy/types.ts';
import { formatIssue, validatePolicy } from '../policy/validate.ts';
import type { RuleSnapshot } from './types.ts';
import { errorMessage } from '../errors.ts';

/** Bumped when the document's shape changes incompatibly; pods refuse schemas they do not know. */
export const SNAPSHOT_SCHEMA = 1;
/** A snapshot larger than this is refused unread: it could only come from a bug or an attacker. */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;

export interface SnapshotMeta {
  /** ISO 8601; defaults to now. */
  readonly createdAt?: string;
  /** W3C trace context of the publish, reserved so pods can link their load span to it. */
  readonly traceparent?: string;
  /** Who published: `policy push`, `operator`. */
  readonly source?: string;
  /** Namespaced when the publisher knows the pods (the operator); absent means Shared. */
  readonly tenancy?: Tenancy;
}

export interface SnapshotDocument {
  readonly schema: typeof SNAPSHOT_SCHEMA;
  readonly version: string;
  readonly createdAt: string;
  readonly source?: string;
  readonly traceparent?: string;
  /** Absent = Shared: namespaced policies govern every client (`policy push`, older operators). */
  readonly tenancy?: Tenancy;
  readonly policies: readonly Socks4Policy[];
}

export class SnapshotInvalidError extends Error {
  override name = 'SnapshotInvalidError';
  readonly issues: readonly Issue[];
  constructor(message: string, issues: readonly Issue[] = []) {
    super(issues.length === 0 ? message : `${message}: ${issues.map(formatIssue).join('; ')}`);
    this.issues = issues;
  }
}

const idOf = (p: Socks4Policy): string => policyId(p);

/**
 * Only what evaluation depends on: Kubernetes bookkeeping (resourceVersion, managedFields,
 * status) would otherwise change the version on every status write without changing a rule.
 */
function normalizePolicy(p: Socks4Policy): Socks4Policy {
  // `enforcement: Enforce` is the default: written or not, the same rules get the same version
  // (the CRD fills the default in, a policy file usually does not).
  const { enforcement, ...spec } = p.spec;
  return {
    apiVersion: p.apiVersion,
    kind: p.kind,
    metadata:
      p.kind === CLUSTER_KIND
        ? { name: p.metadata.name }
        : { name: p.metadata.name, namespace: p.metadata.namespace ?? DEFAULT_NAMESPACE },
    spec: {
      ...spec,
      priority: p.spec.priority ?? DEFAULT_PRIORITY,
      ...(enforcement === Enforcement.Report ? { enforcement } : {}),
    },
  };
}

/** JSON with object keys sorted, so equal content always hashes to the same version. */
export function stringifyCanonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** Validates every policy, reporting all issues with the policy they belong to. */
function collectIssues(policies: readonly unknown[]): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<string>();
  policies.forEach((p, i) => {
    const found = validatePolicy(p);
    const id = found.length === 0 ? idOf(p as Socks4Policy) : `policies[${i}]`;
    for (const issue of found)
      issues.push({ path: issue.path === '' ? id : `${id}: ${issue.path}`, message: issue.message });
    if (found.length === 0) {
      if (seen.has(id)) issues.push({ path: `${id}: metadata.name`, message: `duplicate policy ${id}` });
      seen.add(id);
    }
  });
  return issues;
}

/** Throws SnapshotInvalidError with every issue when any of `policies` is invalid. */
export function validatePolicies(policies: readonly unknown[], what: string): void {
  const issues = collectIssues(policies);
  if (issues.length > 0) throw new SnapshotInvalidError(`${what} is invalid`, issues);
}

/** Builds the document to publish; throws SnapshotInvalidError rather than publish bad rules. */
export function buildSnapshotDocument(
  policies: readonly Socks4Policy[],
  meta: SnapshotMeta = {},
): { document: SnapshotDocument; json: string } {
  const issues = collectIssues(policies);
  if (issues.length > 0) throw new SnapshotInvalidError('refusing to publish invalid policies', issues);
  const normalized = policies.map(normalizePolicy).sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  compilePolicies(normalized); // the pods will; fail here first
  const namespaced = meta.tenancy === Tenancy.Namespaced;
  // The tenancy changes what the same policies decide, so it is part of the version.
  const body = stringifyCanonical(namespaced ? { policies: normalized, tenancy: Tenancy.Namespaced } : normalized);
  const version = createHash('sha256').update(body).digest('hex').slice(0, 12);
  const document: SnapshotDocument = {
    schema: SNAPSHOT_SCHEMA,
    version,
    createdAt: meta.createdAt ?? new Date().toISOString(),
    ...(meta.source === undefined ? {} : { source: meta.source }),
    ...(meta.traceparent === undefined ? {} : { traceparent: meta.traceparent }),
    ...(namespaced ? { tenancy: Tenancy.Namespaced } : {}),
    policies: normalized,
  };
  return { document, json: stringifyCanonical(document) };
}

export interface ParsedSnapshot {
  readonly document: SnapshotDocument;
  readonly snapshot: RuleSnapshot;
}

/** Parses, validates and compiles a stored document; throws SnapshotInvalidError on any doubt. */
export function parseSnapshotDocument(json: string, expectedVersion: string, now = Date.now()): ParsedSnapshot {
  if (json.length > MAX_SNAPSHOT_BYTES)
    throw new SnapshotInvalidError(`snapshot ${expectedVersion} is larger than ${MAX_SNAPSHOT_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new SnapshotInvalidError(`snapshot ${expectedVersion} is not JSON (${errorMessage(error)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new SnapshotInvalidError(`snapshot ${expectedVersion} is not an object`);
  const doc = raw as Record<string, unknown>;
  if (doc.schema !== SNAPSHOT_SCHEMA) {
    throw new SnapshotInvalidError(
      `snapshot ${expectedVersion} has schema ${JSON.stringify(doc.schema)}; this pod reads schema ${SNAPSHOT_SCHEMA}`,
    );
  }
  if (doc.version !== expectedVersion)
    throw new SnapshotInvalidError(`snapshot key ${expectedVersion} holds version ${JSON.stringify(doc.version)}`);
  if (!Array.isArray(doc.policies)) throw new SnapshotInvalidError(`snapshot ${expectedVersion} has no policies list`);
  validatePolicies(doc.policies, `snapshot ${expectedVersion}`);
  if (doc.tenancy !== undefined && doc.tenancy !== Tenancy.Namespaced && doc.tenancy !== Tenancy.Shared) {
    throw new SnapshotInvalidError(
      `snapshot ${expectedVersion} has tenancy ${JSON.stringify(doc.tenancy)}; this pod knows Shared and Namespaced`,
    );
  }
  return compileSnapshot(
    {
      version: expectedVersion,
      createdAt: typeof doc.createdAt === 'string' ? doc.createdAt : '',
      ...(typeof doc.source === 'string' ? { source: doc.source } : {}),
      ...(typeof doc.traceparent === 'string' ? { traceparent: doc.traceparent } : {}),
      ...(doc.tenancy === Tenancy.Namespaced ? { tenancy: Tenancy.Namespaced } : {}),
    },
    doc.policies as Socks4Policy[],
    now,
  );
}

/** Compiles validated policies into the snapshot a pod enforces (from the document or from chunks). */
export function compileSnapshot(
  meta: Omit<SnapshotDocument, 'schema' | 'policies'>,
  policies: readonly Socks4Policy[],
  now = Date.now(),
): ParsedSnapshot {
  const tenancy = meta.tenancy === Tenancy.Namespaced ? Tenancy.Namespaced : Tenancy.Shared;
  const compiled = compilePolicies(policies, { tenancy });
  return {
    document: {
      schema: SNAPSHOT_SCHEMA,
      version: meta.version,
      createdAt: meta.createdAt,
      ...(meta.source === undefined ? {} : { source: meta.source }),
      ...(meta.traceparent === undefined ? {} : { traceparent: meta.traceparent }),
      ...(tenancy === Tenancy.Namespaced ? { tenancy } : {}),
      policies,
    },
    snapshot: {
      version: meta.version,
      compiled,
      policyCount: compiled.policyCount,
      ruleCount: compiled.ruleCount,
      loadedAt: now,
    },
  };
}
