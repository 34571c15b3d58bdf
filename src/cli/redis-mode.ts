// The `proxy` flags of fleet mode (--redis-url or env REDIS_URL, ...) and their translation into
// a RedisFleet, kept out of proxy-command.ts so that file only chooses between the file and the
// Redis mode.
import { redisFlagOptions, redisFlagsHelp, readRedisFlags, type RedisFlagValues } from '../redis/cli-options.ts';
import { openRedisFleet, type RedisFleet } from '../redis/fleet.ts';
import { UsageError } from './args.ts';
import { durationHelp, durationOption, readDuration } from './durations.ts';

export const redisModeOptions = {
  ...redisFlagOptions,
  'limits-fail-mode': { type: 'string', default: 'open' },
  'rules-refresh': durationOption('rules-refresh'),
  'lease-ttl': durationOption('lease-ttl'),
} as const;

export const redisModeHelp = `${redisFlagsHelp}
Fleet mode (--redis-url or REDIS_URL, without --policy-file):
  --limits-fail-mode M      open|closed: while Redis is unusable, admit within per-pod local
                            limits (open, default) or refuse with 91 (closed)
${durationHelp(['rules-refresh', 'lease-ttl'])}`;

export interface RedisModeValues extends RedisFlagValues {
  readonly 'limits-fail-mode'?: string | undefined;
  readonly 'rules-refresh'?: string | undefined;
  readonly 'lease-ttl'?: string | undefined;
}

export function openRedisMode(values: RedisModeValues, env: NodeJS.ProcessEnv = process.env): RedisFleet {
  const { connection, prefix } = readRedisFlags(values, env);
  const failMode = values['limits-fail-mode'] ?? 'open';
  if (failMode !== 'open' && failMode !== 'closed') throw new UsageError(`--limits-fail-mode: "${failMode}" is not open or closed`);
  const refreshIntervalMs = readDuration('rules-refresh', values['rules-refresh']);
  const leaseTtlMs = readDuration('lease-ttl', values['lease-ttl']);
  return openRedisFleet({ connection, prefix, failMode, refreshIntervalMs, leaseTtlMs });
}
