// The `proxy` flags of fleet mode (--redis-url or env REDIS_URL, ...) and their translation into
// a RedisFleet, kept out of proxy-command.ts so that file only chooses between the file and the
// Redis mode.
import { redisFlagOptions, redisFlagsHelp, readRedisFlags, type RedisFlagValues } from '../redis/cli-options.ts';
import { openRedisFleet, type RedisFleet } from '../redis/fleet.ts';
import { parseDuration, UsageError } from './args.ts';

export const redisModeOptions = {
  ...redisFlagOptions,
  'limits-fail-mode': { type: 'string', default: 'open' },
  'rules-refresh': { type: 'string', default: '15s' },
  'lease-ttl': { type: 'string', default: '15s' },
} as const;

export const redisModeHelp = `${redisFlagsHelp}
Fleet mode (--redis-url or REDIS_URL, without --policy-file):
  --limits-fail-mode M      open|closed: while Redis is unusable, admit within per-pod local
                            limits (open, default) or refuse with 91 (closed)
  --rules-refresh D         re-read the rules pointer this often besides notices (default 15s)
  --lease-ttl D             concurrency lease time; a crashed pod's sessions free themselves
                            within it (default 15s)
`;

export interface RedisModeValues extends RedisFlagValues {
  readonly 'limits-fail-mode'?: string | undefined;
  readonly 'rules-refresh'?: string | undefined;
  readonly 'lease-ttl'?: string | undefined;
}

export function openRedisMode(values: RedisModeValues, env: NodeJS.ProcessEnv = process.env): RedisFleet {
  const { connection, prefix } = readRedisFlags(values, env);
  const failMode = values['limits-fail-mode'] ?? 'open';
  if (failMode !== 'open' && failMode !== 'closed') throw new UsageError(`--limits-fail-mode: "${failMode}" is not open or closed`);
  const refreshIntervalMs = parseDuration('rules-refresh', values['rules-refresh'] ?? '15s');
  const leaseTtlMs = parseDuration('lease-ttl', values['lease-ttl'] ?? '15s');
  if (refreshIntervalMs < 100) throw new UsageError('--rules-refresh: must be at least 100ms');
  if (leaseTtlMs < 300) throw new UsageError('--lease-ttl: must be at least 300ms');
  return openRedisFleet({ connection, prefix, failMode, refreshIntervalMs, leaseTtlMs });
}
