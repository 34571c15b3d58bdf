// The fleet's live rules, read the way a proxy pod reads them: the current-version pointer, the
// immutable snapshot it names, parsed and compiled with the pods' own code. Used by `policy
// explain --redis-url` and `policy diff`, which must answer about what the fleet enforces now,
// not about a file that may differ from it.
import { readRedisFlags, redactRedisUrl, redisFlagOptions, type RedisFlagValues } from './redis-flags.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../redis/connection.ts';
import { ruleKeys, VERSION_PATTERN } from '../rules/redis-keys.ts';
import { parseSnapshotDocument, type ParsedSnapshot } from '../rules/snapshot-document.ts';
import { DURATIONS, durationOption, readDuration } from './durations.ts';
import { errorMessage } from '../errors.ts';

export const liveRulesOptions = {
  ...redisFlagOptions,
  timeout: durationOption('timeout'),
} as const;

export interface LiveRulesValues extends RedisFlagValues {
  readonly timeout?: string | undefined;
}

/** A failure a person can act on; the message is one line naming the cause. */
export class LiveRulesError extends Error {
  override name = 'LiveRulesError';
}

export interface LiveRules extends ParsedSnapshot {
  readonly prefix: string;
  /** ms since the publisher created the snapshot; null when the document has no date. */
  readonly ageMs: number | null;
}

/** Reads and compiles the live snapshot; throws UsageError for bad flags, LiveRulesError otherwise. */
export async function readLiveRules(
  values: LiveRulesValues,
  env: NodeJS.ProcessEnv,
  now = Date.now(),
): Promise<LiveRules> {
  const { connection, prefix } = readRedisFlags(values, env);
  const timeoutText = values.timeout ?? DURATIONS.timeout.default;
  const timeoutMs = readDuration('timeout', timeoutText);
  const keys = ruleKeys(prefix);
  const client = createRedisClient({
    ...connection,
    commandTimeoutMs: timeoutMs,
    connectTimeoutMs: timeoutMs,
    connectionName: 'socks4-fleet-cli',
  });
  try {
    if (!(await waitForReady(client, timeoutMs)))
      throw new LiveRulesError(`cannot reach Redis at ${redactRedisUrl(connection.url)} within ${timeoutText}`);
    let version: string | null;
    let json: string | null;
    try {
      version = await client.get(keys.pointer);
      if (version === null) {
        throw new LiveRulesError(
          `no rules are published under prefix "${prefix}" (${keys.pointer} is empty): check --redis-prefix, or publish with "socks4-fleet policy push" or the operator`,
        );
      }
      if (!VERSION_PATTERN.test(version))
        throw new LiveRulesError(`${keys.pointer} holds "${version.slice(0, 80)}", not a snapshot version`);
      json = await client.get(keys.snapshot(version));
    } catch (error) {
      if (error instanceof LiveRulesError) throw error;
      throw new LiveRulesError(`reading rules from Redis: ${errorMessage(error)}`);
    }
    if (json === null) throw new LiveRulesError(`snapshot ${version} is named by ${keys.pointer} but missing`);
    let parsed: ParsedSnapshot;
    try {
      parsed = parseSnapshotDocument(json, version, now);
    } catch (error) {
      throw new LiveRulesError(errorMessage(error));
    }
    const created = Date.parse(parsed.document.createdAt);
    return { ...parsed, prefix, ageMs: Number.isNaN(created) ? null : Math.max(0, now - created) };
  } finally {
    await closeRedisClient(client);
  }
}

/** "3s", "5m 3s", "2h 1m", "3d 4h": an age a person reads at a glance. */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** The header line naming the live snapshot: version, age, publisher, size, Report policies. */
export function describeLiveRules(live: LiveRules): string {
  const { document, snapshot } = live;
  const reports = snapshot.compiled.report?.policies.size ?? 0;
  const when =
    live.ageMs === null ? 'publish time unknown' : `published ${document.createdAt}, ${formatAge(live.ageMs)} ago`;
  const by = document.source === undefined ? '' : ` by ${document.source}`;
  const report = reports === 0 ? '' : `, ${reports} in Report mode`;
  return `snapshot: ${snapshot.version} under prefix "${live.prefix}" (${when}${by}); ${snapshot.policyCount} policies, ${snapshot.ruleCount} rules${report}`;
}
