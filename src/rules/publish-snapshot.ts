// Publishing a rules snapshot: the one code path `socks4-fleet policy push` and the operator share.
// The snapshot is written under its own immutable key, then one script moves the pointer and
// announces the new version, so a pod sees either the old or the new rules and never a mix.
// The previous snapshot is kept for a while (TTL) so a pod that read the old pointer a moment ago
// can still fetch what it points to. Beside the document, the same version is written as a
// manifest and content-addressed chunks (snapshot-chunks.ts) that pods fetch instead: chunks of
// the current version never expire, chunks only the previous version used expire with it.
import type { Socks4Policy } from '../policy/types.ts';
import type { RedisClient } from '../redis/connection.ts';
import { ruleKeys, VERSION_PATTERN } from './redis-keys.ts';
import { buildSnapshotChunks, parseManifest } from './snapshot-chunks.ts';
import { buildSnapshotDocument, type SnapshotMeta } from './snapshot-document.ts';

/** How long a replaced snapshot stays readable. */
export const DEFAULT_OLD_SNAPSHOT_TTL_MS = 10 * 60_000;
/** Compare-and-set retries when another publisher moves the pointer at the same moment. */
const MAX_ATTEMPTS = 5;

// KEYS: pointer, new snapshot, previous snapshot (= new when there is none), new manifest,
// previous manifest (= new when there is none), the n chunks of the new manifest, then chunks
// only the previous manifest names. ARGV: expected current version ('' = none), new version,
// document JSON, TTL for the previous snapshot (ms), notice channel, manifest JSON, n, the n
// chunks' JSON. Returns {outcome, version found}: 0 = pointer moved meanwhile (retry),
// 1 = published, 2 = already current (everything is rewritten in case it was lost, nobody is
// notified). SET clears a TTL, so a chunk the new version shares with an expiring one stays.
const PUBLISH_LUA = `
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return {0, current or ''} end
local n = tonumber(ARGV[7])
for i = 1, n do redis.call('SET', KEYS[5 + i], ARGV[7 + i]) end
redis.call('SET', KEYS[4], ARGV[6])
redis.call('SET', KEYS[2], ARGV[3])
if current == ARGV[2] then return {2, current} end
redis.call('SET', KEYS[1], ARGV[2])
if current and KEYS[3] ~= KEYS[2] then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
  for i = 6 + n, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, current or ''}
`;

const COMMAND = 'socks4PublishSnapshot';

type PublishScript = (...args: (string | number)[]) => Promise<[number, string]>;

function publishScript(client: RedisClient): PublishScript {
  const commands = client as unknown as Record<string, PublishScript | undefined>;
  if (commands[COMMAND] === undefined) client.defineCommand(COMMAND, { lua: PUBLISH_LUA });
  return (commands[COMMAND] as PublishScript).bind(client);
}

/** The chunks the version being replaced names; none when it has no readable manifest. */
async function previousChunks(client: RedisClient, key: string, version: string): Promise<readonly string[]> {
  const text = await client.get(key);
  if (text === null) return [];
  try {
    return parseManifest(text, version).chunks;
  } catch {
    return []; // a corrupt manifest: its chunks are not ours to expire
  }
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
  const { manifestJson, chunks } = buildSnapshotChunks(document);
  const keys = ruleKeys(prefix);
  const run = publishScript(client);
  const ttl = options.oldSnapshotTtlMs ?? DEFAULT_OLD_SNAPSHOT_TTL_MS;
  let expected = (await client.get(keys.pointer)) ?? '';
  for (let attempt = 1; ; attempt++) {
    // A pointer that is no version (hand-edited, corrupt) has no snapshot to expire.
    const known = VERSION_PATTERN.test(expected);
    const previousKey = keys.snapshot(known ? expected : document.version);
    const previousManifest = keys.manifest(known ? expected : document.version);
    const stale = known
      ? (await previousChunks(client, previousManifest, expected)).filter((id) => !chunks.has(id))
      : [];
    const chunkKeys = [...chunks.keys(), ...stale].map((id) => keys.chunk(id));
    const [outcome, found] = await run(
      5 + chunkKeys.length,
      keys.pointer,
      keys.snapshot(document.version),
      previousKey,
      keys.manifest(document.version),
      previousManifest,
      ...chunkKeys,
      expected,
      document.version,
      json,
      ttl,
      keys.channel,
      manifestJson,
      chunks.size,
      ...chunks.values(),
    );
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
    if (attempt >= MAX_ATTEMPTS)
      throw new Error(
        `the rules pointer kept moving while publishing ${document.version}; another publisher is active`,
      );
    expected = found;
  }
}
