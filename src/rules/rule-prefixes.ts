// Which prefixes in this Redis hold a rules pointer. The chart's prefix defaults to the release
// name and the CLI's to "socks4-fleet", so a `policy push` from a laptop can land where no pod
// reads: the proxy's no-snapshot warning and `policy push` name the prefixes that do hold rules.
import { Cluster } from 'ioredis';
import type { RedisClient } from '../redis/connection.ts';
import { ruleKeys } from './redis-keys.ts';

// The pointer key's shape comes from ruleKeys itself, cut where a sample prefix appears, so a
// change to the key layout changes the search with it: today ['', ':v1:{', ':rules}:current'].
const SAMPLE_PREFIX = 'PREFIX';
const POINTER_PARTS = ruleKeys(SAMPLE_PREFIX).pointer.split(SAMPLE_PREFIX);
/** SCAN's glob: the prefix's places as `*` (the parts hold none of `*?[]\\`, asserted below). */
const POINTER_MATCH = POINTER_PARTS.join('*');
/** The same with the prefix's places captured: a real pointer has one prefix in every place. */
const POINTER_RE = new RegExp(
  `^${POINTER_PARTS.map((part) => part.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')).join('(.+)')}$`,
);
if (POINTER_PARTS.length < 2 || POINTER_PARTS.some((part) => /[*?[\]\\]/.test(part)))
  throw new Error(`rules pointer key ${ruleKeys(SAMPLE_PREFIX).pointer} cannot be searched by prefix`);
/** SCAN is bounded: a large keyspace costs at most this many round trips. */
const MAX_SCAN_CALLS = 20;

/** Prefixes with a rules pointer, sorted; [] for Cluster or when Redis cannot be asked. */
export async function findRulePrefixes(client: RedisClient): Promise<string[]> {
  if (client instanceof Cluster) return [];
  const found = new Set<string>();
  try {
    let cursor = '0';
    for (let calls = 0; calls < MAX_SCAN_CALLS; calls++) {
      const [next, keys] = await client.scan(cursor, 'MATCH', POINTER_MATCH, 'COUNT', 1000);
      for (const key of keys) {
        const match = POINTER_RE.exec(key);
        const [, prefix, ...others] = match ?? [];
        if (prefix !== undefined && others.every((other) => other === prefix)) found.add(prefix);
      }
      cursor = next;
      if (cursor === '0') break;
    }
  } catch {
    return [...found].sort(); // a missing SCAN permission must not hide the warning itself
  }
  return [...found].sort();
}
