// Key layout in Redis. Everything lives under `<prefix>:v1:`; `v1` is the schema version, so a
// future layout can live beside this one during a rolling upgrade.
//
//   <p>:v1:{<p>:rules}:current              the version the fleet should serve (string)
//   <p>:v1:{<p>:rules}:snapshot:<version>   immutable snapshot JSON; old ones expire
//   <p>:v1:{<p>:rules}:manifest:<version>   the same version as a list of chunk digests
//   <p>:v1:{<p>:rules}:chunk:<digest>       policies of one bucket (snapshot-chunks.ts); immutable
//   <p>:v1:rules:notice                     pub/sub channel, message = the new version
//   <p>:v1:{<p>:<rule>}:rate:<kind>         GCRA theoretical arrival time (string, ms)
//   <p>:v1:{<p>:<rule>}:sessions:<kind>     ZSET of session leases scored by expiry (ms)
//   <p>:v1:{<p>:<rule>}:bandwidth:<kind>    bandwidth bucket: "tokens updatedAt" (string)
//
// <kind> is `rule`, `ip:<encoded address>` or `user:<encoded USERID>`. The hash tag `{...}` puts
// every key of one rule in one Cluster slot, which is what lets a single script decide all of a
// session's limits in one round trip; the price is that one rule's limit traffic lands on one
// shard. Rule ids and USERIDs are encoded (src/limits/keys.ts), so neither can contain `{`, `}`,
// `:` or control bytes and no value can leave its own key.

import { encodeKeyPart } from '../limits/keys.ts';
import type { AdmitRequest, LimitKey } from '../limits/types.ts';

export { encodeKeyPart };

export const SCHEMA_VERSION = 'v1';
export const DEFAULT_PREFIX = 'socks4-fleet';

/** Prefixes come from flags and Helm values: plain names only, never a brace or a space. */
const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Returns why a prefix is unusable, or null when it is fine. */
export function checkPrefix(prefix: string): string | null {
  return PREFIX_PATTERN.test(prefix)
    ? null
    : `"${prefix}" is not a usable prefix (letters, digits, '.', '_', ':', '-'; up to 100; no braces)`;
}

function requirePrefix(prefix: string): string {
  const problem = checkPrefix(prefix);
  if (problem !== null) throw new Error(problem);
  return prefix;
}

export interface RuleKeys {
  readonly pointer: string;
  readonly channel: string;
  snapshot(version: string): string;
  manifest(version: string): string;
  chunk(digest: string): string;
}

/** Versions are hex digests made by publishSnapshot; anything else is refused before use. */
export const VERSION_PATTERN = /^[0-9a-f]{12,64}$/;
/** Chunk digests (snapshot-chunks.ts). */
export const CHUNK_DIGEST_PATTERN = /^[0-9a-f]{32}$/;

export function ruleKeys(prefix: string): RuleKeys {
  const base = `${requirePrefix(prefix)}:${SCHEMA_VERSION}:{${prefix}:rules}`;
  return {
    pointer: `${base}:current`,
    channel: `${prefix}:${SCHEMA_VERSION}:rules:notice`,
    snapshot(version: string): string {
      if (!VERSION_PATTERN.test(version)) throw new Error(`"${version}" is not a snapshot version`);
      return `${base}:snapshot:${version}`;
    },
    manifest(version: string): string {
      if (!VERSION_PATTERN.test(version)) throw new Error(`"${version}" is not a snapshot version`);
      return `${base}:manifest:${version}`;
    },
    chunk(digest: string): string {
      if (!CHUNK_DIGEST_PATTERN.test(digest)) throw new Error(`"${digest}" is not a chunk digest`);
      return `${base}:chunk:${digest}`;
    },
  };
}

export type LimitKind = 'rate' | 'sessions' | 'bandwidth';

type KeyRequest = Pick<AdmitRequest, 'ruleId' | 'sourceIp' | 'userId'>;

/** The Redis key of one limit of one rule for one client, e.g. `p:v1:{p:ns%2Fpol%2Fweb}:rate:ip:10.0.0.1`. */
export function limitKey(prefix: string, limit: LimitKind, key: LimitKey, req: KeyRequest): string {
  const base = `${prefix}:${SCHEMA_VERSION}:{${prefix}:${encodeKeyPart(req.ruleId)}}:${limit}`;
  switch (key) {
    case 'Rule':
      return `${base}:rule`;
    case 'SourceIP':
      return `${base}:ip:${encodeKeyPart(req.sourceIp)}`;
    case 'UserID':
      return `${base}:user:${encodeKeyPart(req.userId)}`;
  }
}

/** The Cluster hash tag of a key (what decides its slot), or the whole key when it has none. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

export interface PodKeys {
  /** Hash: pod address → the pod's namespace. Addresses and namespaces are field data, never key parts. */
  readonly addresses: string;
  /** Pub/sub: a message is one changed address, or POD_RESYNC when every entry may have changed. */
  readonly channel: string;
}

export const POD_RESYNC = '*';

/**
 * Where the operator publishes which namespace each pod address belongs to, apart from the rules
 * snapshot: pods come and go far more often than policies change, and each change is one field.
 *
 *   <p>:v1:{<p>:pods}:addresses   HASH address → namespace
 *   <p>:v1:pods:notice            pub/sub channel, message = the changed address or "*"
 */
export function podKeys(prefix: string): PodKeys {
  return {
    addresses: `${requirePrefix(prefix)}:${SCHEMA_VERSION}:{${prefix}:pods}:addresses`,
    channel: `${prefix}:${SCHEMA_VERSION}:pods:notice`,
  };
}
