// The Redis connection flags `proxy`, `policy push` and `operator` share, and their translation
// into connection options. The URL and the secrets may come from the environment so they stay out
// of process lists.
import { readFileSync } from 'node:fs';
import { UsageError } from './args.ts';
import type { RedisConnectionOptions } from '../redis/connection.ts';
import { parseRedisUrl } from '../redis/connection.ts';
import { checkPrefix, DEFAULT_PREFIX } from '../redis/keys.ts';
import { maskRedisUrl } from '../redis/problems.ts';
import { errorMessage } from '../errors.ts';

export const redisFlagOptions = {
  'redis-url': { type: 'string' },
  'redis-prefix': { type: 'string', default: DEFAULT_PREFIX },
  'redis-username': { type: 'string' },
  'redis-password': { type: 'string' },
  'redis-tls-ca': { type: 'string' },
  'redis-sentinels': { type: 'string' },
  'redis-sentinel-name': { type: 'string' },
  'redis-cluster': { type: 'boolean', default: false },
} as const;

export const redisFlagsHelp = `Redis connection:
  --redis-url URL           redis://[user:pass@]host:port[/db], or rediss:// for TLS; or env
                            REDIS_URL, which keeps credentials out of the process list
  --redis-prefix P          key prefix of this fleet (default ${DEFAULT_PREFIX})
  --redis-username NAME     ACL user (overrides the URL's)
  --redis-password PASS     password (overrides the URL's; prefer env REDIS_PASSWORD)
  --redis-tls-ca FILE       PEM CA bundle that signed the Redis server certificate
  --redis-sentinels H:P,... Sentinel mode: sentinel addresses (the URL gives credentials/TLS)
  --redis-sentinel-name N   Sentinel mode: the master group name
  --redis-cluster           Cluster mode: the URL's host:port is a seed node
`;

export interface RedisFlagValues {
  readonly 'redis-url'?: string | undefined;
  readonly 'redis-prefix'?: string | undefined;
  readonly 'redis-username'?: string | undefined;
  readonly 'redis-password'?: string | undefined;
  readonly 'redis-tls-ca'?: string | undefined;
  readonly 'redis-sentinels'?: string | undefined;
  readonly 'redis-sentinel-name'?: string | undefined;
  readonly 'redis-cluster'?: boolean | undefined;
}

function parseAddressList(flag: string, text: string): { host: string; port: number }[] {
  return text.split(',').map((item) => {
    const match = /^(?:\[([^\]]+)\]|([^:,]+)):(\d{1,5})$/.exec(item.trim());
    const port = Number(match?.[3]);
    if (match === null || port < 1 || port > 65535) throw new UsageError(`--${flag}: "${item}" is not HOST:PORT`);
    return { host: match[1] ?? match[2] ?? '', port };
  });
}

/** The Redis URL and where it came from, for messages that name the source. */
export interface RedisUrlSetting {
  readonly url: string;
  readonly from: '--redis-url' | 'REDIS_URL';
}

/**
 * --redis-url, else env REDIS_URL; null with neither. An empty REDIS_URL counts as unset: a blank
 * variable configures nothing.
 */
export function findRedisUrl(values: RedisFlagValues, env: NodeJS.ProcessEnv = process.env): RedisUrlSetting | null {
  const flag = values['redis-url'];
  if (flag !== undefined) return { url: flag, from: '--redis-url' };
  const fromEnv = env.REDIS_URL;
  return fromEnv === undefined || fromEnv === '' ? null : { url: fromEnv, from: 'REDIS_URL' };
}

/** Flags (+ env REDIS_URL, REDIS_PASSWORD, REDIS_USERNAME) → connection options and prefix; throws UsageError. */
export function readRedisFlags(
  values: RedisFlagValues,
  env: NodeJS.ProcessEnv = process.env,
): { connection: RedisConnectionOptions; prefix: string } {
  const setting = findRedisUrl(values, env);
  if (setting === null) throw new UsageError('--redis-url URL (or env REDIS_URL) is required');
  const { url, from } = setting;
  try {
    parseRedisUrl(url);
  } catch (error) {
    throw new UsageError(`${from}: ${errorMessage(error)}`);
  }
  const prefix = values['redis-prefix'] ?? DEFAULT_PREFIX;
  const problem = checkPrefix(prefix);
  if (problem !== null) throw new UsageError(`--redis-prefix: ${problem}`);
  let tlsCa: Buffer | undefined;
  const caFile = values['redis-tls-ca'];
  if (caFile !== undefined) {
    try {
      tlsCa = readFileSync(caFile);
    } catch (error) {
      throw new UsageError(`--redis-tls-ca: cannot read ${caFile}: ${errorMessage(error)}`);
    }
  }
  const sentinels =
    values['redis-sentinels'] === undefined
      ? undefined
      : parseAddressList('redis-sentinels', values['redis-sentinels']);
  if (sentinels !== undefined && values['redis-sentinel-name'] === undefined) {
    throw new UsageError('--redis-sentinels needs --redis-sentinel-name (the master group name)');
  }
  if (sentinels !== undefined && values['redis-cluster'] === true)
    throw new UsageError('choose --redis-sentinels or --redis-cluster, not both');
  return {
    prefix,
    connection: {
      url,
      username: values['redis-username'] ?? env.REDIS_USERNAME,
      password: values['redis-password'] ?? env.REDIS_PASSWORD,
      tlsCa,
      sentinels,
      sentinelName: values['redis-sentinel-name'],
      cluster: values['redis-cluster'] === true,
    },
  };
}

/** The URL without its password, for messages and logs. */
export const redactRedisUrl = maskRedisUrl;
