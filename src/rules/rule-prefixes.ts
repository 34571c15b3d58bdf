// Which prefixes in this Redis hold a rules pointer. The chart's prefix defaults to the release
// name and the CLI's to "socks4-fleet", so a `policy push` from a laptop can land where no pod
// reads: the proxy's no-snapshot warning and `policy push` name the prefixes that do hold rules.
import { Cluster } from 'ioredis';
import type { RedisClient } from '../redis/connection.ts';
import { SCHEMA_VERSION } from '../redis/keys.ts';

const POINTER_MATCH = `*:${SCHEMA_VERSION}:{*:rules}:current`;
const POINTER_RE = new RegExp(`^(.+):${SCHEMA_VERSION}:\\{(.+):rules\\}:current$`);
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
        if (match !== null && match[1] === match[2]) found.add(match[1] as string);
      }
      cursor = next;
      if (cursor === '0') break;
    }
  } catch {
    return [...found].sort(); // a missing SCAN permission must not hide the warning itself
  }
  return [...found].sort();
}
