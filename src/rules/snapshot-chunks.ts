// The rules snapshot cut into content-addressed chunks, so a push does not make every pod fetch
// every policy. Measured before (bench/fleet-scaling.ts): 1 000 pods × a 3 MiB snapshot (10 000
// policies) cost Redis 16 s of CPU per push and the last pod 2 minutes, although a push usually
// changes one policy. Policies go to one of up to MAX_BUCKETS buckets by a hash of their id; a chunk
// is the canonical JSON of its bucket's policies, stored under its own digest, so an unchanged
// bucket keeps its key from version to version. A small manifest names the chunks of a version;
// a pod fetches the manifest and only the chunks it does not hold yet.
//
// The full document (snapshot-document.ts, schema 1) is still written beside the manifest: pods
// and tools of the previous release read only that, so both can run during a rollout, and a pod
// of this release falls back to it when a version has no manifest (an older publisher).
// Pure: building and checking; the publisher and the rule source do the I/O.
import { createHash } from 'node:crypto';
import { policyId, Tenancy, type Socks4Policy } from '../policy/types.ts';
import { CHUNK_DIGEST_PATTERN } from './redis-keys.ts';
import {
  MAX_SNAPSHOT_BYTES,
  SnapshotInvalidError,
  stringifyCanonical,
  validatePolicies,
  type SnapshotDocument,
} from './snapshot-document.ts';
import { errorMessage } from '../errors.ts';

/** Bumped when the manifest's shape changes incompatibly; pods then fall back to the document. */
export const MANIFEST_SCHEMA = 1;
/**
 * Buckets: about POLICIES_PER_CHUNK policies each, a power of two up to MAX_BUCKETS. The manifest
 * (every pod reads it on every push) stays under 9 KiB, and a one-policy push at 10 000 policies
 * moves one chunk of about 40. Powers of two: the assignment changes (and every chunk with it)
 * only when the policy count doubles.
 */
export const MAX_BUCKETS = 256;
const POLICIES_PER_CHUNK = 32;

export function bucketCount(policies: number): number {
  let buckets = 1;
  while (buckets < MAX_BUCKETS && buckets * POLICIES_PER_CHUNK < policies) buckets *= 2;
  return buckets;
}
const MAX_MANIFEST_BYTES = 1024 * 1024;

export interface SnapshotManifest {
  readonly manifestSchema: typeof MANIFEST_SCHEMA;
  readonly version: string;
  readonly createdAt: string;
  readonly source?: string;
  readonly traceparent?: string;
  readonly tenancy?: Tenancy;
  /** Chunk digests in bucket order; empty buckets have none. */
  readonly chunks: readonly string[];
}

const digest = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 32);

function bucketOf(id: string, buckets: number): number {
  // FNV-1a: stable across releases and runtimes, which a bucket assignment must be.
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % buckets;
}

/** The manifest and chunks (digest → JSON) of a built document; policies keep their sorted order. */
export function buildSnapshotChunks(document: SnapshotDocument): {
  manifest: SnapshotManifest;
  manifestJson: string;
  chunks: Map<string, string>;
} {
  const count = bucketCount(document.policies.length);
  const buckets: Socks4Policy[][] = Array.from({ length: count }, () => []);
  for (const p of document.policies) buckets[bucketOf(policyId(p), count)]!.push(p);
  const chunks = new Map<string, string>();
  const order: string[] = [];
  for (const bucket of buckets) {
    if (bucket.length === 0) continue;
    const json = stringifyCanonical(bucket);
    const id = digest(json);
    chunks.set(id, json);
    order.push(id);
  }
  const manifest: SnapshotManifest = {
    manifestSchema: MANIFEST_SCHEMA,
    version: document.version,
    createdAt: document.createdAt,
    ...(document.source === undefined ? {} : { source: document.source }),
    ...(document.traceparent === undefined ? {} : { traceparent: document.traceparent }),
    ...(document.tenancy === undefined ? {} : { tenancy: document.tenancy }),
    chunks: order,
  };
  return { manifest, manifestJson: stringifyCanonical(manifest), chunks };
}

/** Parses a stored manifest; throws SnapshotInvalidError on any doubt. */
export function parseManifest(json: string, expectedVersion: string): SnapshotManifest {
  if (json.length > MAX_MANIFEST_BYTES)
    throw new SnapshotInvalidError(`manifest ${expectedVersion} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new SnapshotInvalidError(`manifest ${expectedVersion} is not JSON (${errorMessage(error)})`);
  }
  const m = raw as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null || Array.isArray(m))
    throw new SnapshotInvalidError(`manifest ${expectedVersion} is not an object`);
  if (m.manifestSchema !== MANIFEST_SCHEMA)
    throw new SnapshotInvalidError(
      `manifest ${expectedVersion} has schema ${JSON.stringify(m.manifestSchema)}; this pod reads ${MANIFEST_SCHEMA}`,
    );
  if (m.version !== expectedVersion)
    throw new SnapshotInvalidError(`manifest key ${expectedVersion} holds version ${JSON.stringify(m.version)}`);
  if (!Array.isArray(m.chunks) || !m.chunks.every((c) => typeof c === 'string' && CHUNK_DIGEST_PATTERN.test(c))) {
    throw new SnapshotInvalidError(`manifest ${expectedVersion} has no valid chunk list`);
  }
  if (m.tenancy !== undefined && m.tenancy !== Tenancy.Namespaced && m.tenancy !== Tenancy.Shared) {
    throw new SnapshotInvalidError(
      `manifest ${expectedVersion} has tenancy ${JSON.stringify(m.tenancy)}; this pod knows Shared and Namespaced`,
    );
  }
  return {
    manifestSchema: MANIFEST_SCHEMA,
    version: expectedVersion,
    createdAt: typeof m.createdAt === 'string' ? m.createdAt : '',
    ...(typeof m.source === 'string' ? { source: m.source } : {}),
    ...(typeof m.traceparent === 'string' ? { traceparent: m.traceparent } : {}),
    ...(m.tenancy === Tenancy.Namespaced ? { tenancy: Tenancy.Namespaced } : {}),
    chunks: m.chunks as string[],
  };
}

/** Checks a fetched chunk against its digest and validates its policies (each chunk once per pod). */
export function parseChunk(id: string, json: string): readonly Socks4Policy[] {
  if (json.length > MAX_SNAPSHOT_BYTES)
    throw new SnapshotInvalidError(`chunk ${id} is larger than ${MAX_SNAPSHOT_BYTES} bytes`);
  if (digest(json) !== id) throw new SnapshotInvalidError(`chunk ${id} does not match its digest`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new SnapshotInvalidError(`chunk ${id} is not JSON (${errorMessage(error)})`);
  }
  if (!Array.isArray(raw)) throw new SnapshotInvalidError(`chunk ${id} is not a list of policies`);
  validatePolicies(raw, `chunk ${id}`);
  return raw as Socks4Policy[];
}

/** The manifest's policies in the document's order (sorted by id), from chunks already parsed. */
export function assemblePolicies(
  manifest: SnapshotManifest,
  chunks: ReadonlyMap<string, readonly Socks4Policy[]>,
): Socks4Policy[] {
  const all: { id: string; p: Socks4Policy }[] = [];
  const seen = new Set<string>();
  for (const id of manifest.chunks) {
    const policies = chunks.get(id);
    if (policies === undefined) throw new SnapshotInvalidError(`chunk ${id} of ${manifest.version} is missing`);
    for (const p of policies) {
      const key = policyId(p);
      if (seen.has(key)) throw new SnapshotInvalidError(`snapshot ${manifest.version} holds ${key} twice`);
      seen.add(key);
      all.push({ id: key, p });
    }
  }
  all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return all.map((e) => e.p);
}
