// The `proxy` flags of fleet mode (--redis-url or env REDIS_URL, ...) and their translation into
// a RedisFleet, kept out of proxy-command.ts so that file only chooses between the file and the
// Redis mode.
import { redisFlagOptions, redisFlagsHelp, readRedisFlags, type RedisFlagValues } from './redis-flags.ts';
import { parseRedisUrl } from '../redis/connection.ts';
import { openRedisFleet, type RedisFleet } from './redis-fleet.ts';
import { ruleKeys } from '../rules/redis-keys.ts';
import { findRulePrefixes } from '../rules/rule-prefixes.ts';
import {
  maskRedisUrl,
  waitForRedis,
  watchRedisProblems,
  type ReadyOutcome,
  type RedisTarget,
} from '../redis/problems.ts';
import type { Logger } from '../telemetry/logging.ts';
import { UsageError } from './args.ts';
import { durationHelp, durationOption, readDuration } from './durations.ts';

export const redisModeOptions = {
  ...redisFlagOptions,
  'limits-fail-mode': { type: 'string', default: 'open' },
  'rules-refresh': durationOption('rules-refresh'),
  'lease-ttl': durationOption('lease-ttl'),
  'snapshot-warn-interval': durationOption('snapshot-warn-interval'),
} as const;

export const redisModeHelp = `${redisFlagsHelp}
Fleet mode (--redis-url or REDIS_URL, without --policy-file):
  --limits-fail-mode M      open|closed: while Redis is unusable, admit within per-pod local
                            limits (open, default) or refuse with 91 (closed)
${durationHelp(['rules-refresh', 'lease-ttl', 'snapshot-warn-interval'])}`;

export interface RedisModeValues extends RedisFlagValues {
  readonly 'limits-fail-mode'?: string | undefined;
  readonly 'rules-refresh'?: string | undefined;
  readonly 'lease-ttl'?: string | undefined;
  readonly 'snapshot-warn-interval'?: string | undefined;
}

/** The fleet plus what messages about it name: the URL (masked when printed) and the prefix. */
export interface RedisMode extends RedisFleet {
  readonly prefix: string;
  readonly target: RedisTarget;
}

export function openRedisMode(values: RedisModeValues, env: NodeJS.ProcessEnv = process.env): RedisMode {
  const { connection, prefix } = readRedisFlags(values, env);
  const failMode = values['limits-fail-mode'] ?? 'open';
  if (failMode !== 'open' && failMode !== 'closed')
    throw new UsageError(`--limits-fail-mode: "${failMode}" is not open or closed`);
  const refreshIntervalMs = readDuration('rules-refresh', values['rules-refresh']);
  const leaseTtlMs = readDuration('lease-ttl', values['lease-ttl']);
  const { tls, db } = parseRedisUrl(connection.url);
  const fleet = openRedisFleet({ connection, prefix, failMode, refreshIntervalMs, leaseTtlMs });
  return { ...fleet, prefix, target: { url: connection.url, tls, db } };
}

/** How long start-up waits to hear from Redis before going on (the rule source waits as long). */
const FIRST_CONTACT_MS = 5_000;

export interface RedisModeWatch {
  /** The first connection's outcome: a fatal problem (credentials, database, name) stops start-up. */
  readonly firstContact: Promise<ReadyOutcome>;
  /** After start: warn now, and every interval, while no rules snapshot is held. */
  warnWhileNoSnapshot(): Promise<void>;
  stop(): void;
}

/**
 * Says what is wrong with the fleet's Redis as soon as it is wrong (the cause, the masked URL,
 * never the password), and that a pod with no snapshot refuses everything: silence here used to
 * leave a wrong prefix or a wrong password to be found by reading code.
 */
export function watchRedisMode(mode: RedisMode, logger: Logger, warnEveryMs: number): RedisModeWatch {
  const redis = maskRedisUrl(mode.target.url);
  const { prefix } = mode;
  const firstContact = waitForRedis(mode.client, FIRST_CONTACT_MS, mode.target);
  const unwatch = watchRedisProblems(mode.client, mode.target, (problem, repeats) => {
    logger.error({ redis, prefix, problem: problem.kind, repeats }, problem.message);
  });
  let timer: NodeJS.Timeout | undefined;
  const warn = async (): Promise<void> => {
    if (mode.rules.current() !== null) return;
    const others =
      mode.client.status === 'ready' ? (await findRulePrefixes(mode.client)).filter((p) => p !== prefix) : [];
    const hint =
      others.length === 0
        ? ''
        : `; this Redis holds rules under prefix ${others.map((p) => `"${p}"`).join(', ')}: is --redis-prefix right? (the chart's prefix defaults to the release name)`;
    logger.warn(
      { redis, prefix, pointer: ruleKeys(prefix).pointer, otherPrefixes: others },
      `no rules snapshot under prefix "${prefix}": every request is refused and /readyz fails until one is published there (socks4-fleet policy push FILE --redis-prefix ${prefix}, or the operator)${hint}`,
    );
  };
  return {
    firstContact,
    async warnWhileNoSnapshot() {
      await warn();
      if (warnEveryMs > 0) {
        timer = setInterval(() => void warn(), warnEveryMs);
        timer.unref();
      }
    },
    stop() {
      clearInterval(timer);
      unwatch();
    },
  };
}
