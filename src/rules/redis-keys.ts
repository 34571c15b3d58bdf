// The Redis keys of the rules snapshot and the pod map, under the fleet's prefix (src/redis/keys.ts):
//
//   <p>:v1:{<p>:rules}:current              the version the fleet should serve (string)
//   <p>:v1:{<p>:rules}:snapshot:<version>   immutable snapshot JSON; old ones expire
//   <p>:v1:{<p>:rules}:manifest:<version>   the same version as a list of chunk digests
//   <p>:v1:{<p>:rules}:chunk:<digest>       policies of one bucket (snapshot-chunks.ts); immutable
//   <p>:v1:rules:notice                     pub/sub channel, message = the new version

import { requirePrefix, SCHEMA_VERSION } from '../redis/keys.ts';

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
