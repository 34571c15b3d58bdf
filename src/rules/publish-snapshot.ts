// Publishing a rules snapshot: the one code path `socks4-fleet policy push` and the operator share.
// The snapshot is written under its own immutable key, then one script moves the pointer and
// announces the new version, so a pod sees either the old or the new rules and never a mix.
// The previous snapshot is kept for a while (TTL) so a pod that read the old pointer a moment ago
// can still fetch what it points to.
import type { Socks4Policy } from '../policy/types.ts';
import type { RedisClient } from '../redis/connection.ts';
import { ruleKeys, VERSION_PATTERN } from './redis-keys.ts';
import { buildSnapshotDocument, type SnapshotMeta } from './snapshot-document.ts';

/** How long a replaced snapshot stays readable. */
export const DEFAULT_OLD_SNAPSHOT_TTL_MS = 10 * 60_000;
/** Compare-and-set retries when another publisher moves the pointer at the same moment. */
const MAX_ATTEMPTS = 5;

// KEYS: pointer, new snapshot, previous snapshot (= new when there is none). ARGV: expected current version ('' = none),
// new version, document JSON, TTL for the previous snapshot (ms), notice channel.
// Returns {outcome, version found}: 0 = pointer moved meanwhile (retry), 1 = published,
// 2 = already current (the document is rewritten in case it was lost, nobody is notified).
const PUBLISH_LUA = `
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return {0, current or ''} end
redis.call('SET', KEYS[2], ARGV[3])
if current == ARGV[2] then return {2, current} end
redis.call('SET', KEYS[1], ARGV[2])
if current and KEYS[3] ~= KEYS[2] then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, current or ''}
`;

const COMMAND = 'socks4PublishSnapshot';

type PublishScript = (...args: (string | number)[]) => Promise<[number, string]>;

function publishScript(client: RedisClient): PublishScript {
  const commands = client as unknown as Record<string, PublishScript | undefined>;
  if (commands[COMMAND] === undefined) client.defineCommand(COMMAND, { lua: PUBLISH_LUA, numberOfKeys: 3 });
  return (commands[COMMAND] as PublishScript).bind(client);
}

export interface PublishResult {
  readonly version: string;
  /** The version the pointer held before ('' when none). */
  readonly previous: string;
  /** False when these rules were already current: nothing changed for the fleet. */
  readonly changed: boolean;
  readonly policyCount: number;
  readonly ruleCount: number;
  readonly snapshotKey: string;
}

export interface PublishOptions {
  readonly oldSnapshotTtlMs?: number;
}

/**
 * Validates, compiles and publishes `policies` as the fleet's rules. Throws SnapshotInvalidError
 * (with every issue) before touching Redis when the policies are not valid.
 */
export async function publishSnapshot(
  client: RedisClient,
  prefix: string,
  policies: readonly Socks4Policy[],
  meta: SnapshotMeta = {},
  options: PublishOptions = {},
): Promise<PublishResult> {
  const { document, json } = buildSnapshotDocument(policies, meta);
  const keys = ruleKeys(prefix);
  const run = publishScript(client);
  const ttl = options.oldSnapshotTtlMs ?? DEFAULT_OLD_SNAPSHOT_TTL_MS;
  let expected = (await client.get(keys.pointer)) ?? '';
  for (let attempt = 1; ; attempt++) {
    // A pointer that is no version (hand-edited, corrupt) has no snapshot to expire.
    const previousKey = VERSION_PATTERN.test(expected) ? keys.snapshot(expected) : keys.snapshot(document.version);
    const [outcome, found] = await run(keys.pointer, keys.snapshot(document.version), previousKey, expected, document.version, json, ttl, keys.channel);
    if (outcome !== 0) {
      return {
        version: document.version,
        previous: found,
        changed: outcome === 1,
        policyCount: document.policies.length,
        ruleCount: document.policies.reduce((n, p) => n + p.spec.rules.length, 0),
        snapshotKey: keys.snapshot(document.version),
      };
    }
    if (attempt >= MAX_ATTEMPTS) throw new Error(`the rules pointer kept moving while publishing ${document.version}; another publisher is active`);
    expected = found;
  }
}
