// Fleet mode for `socks4-fleet proxy --redis-url`: one Redis connection shared by the rule source
// and the limiter (plus the source's subscriber connection). The limiter's close() also closes
// the connection, so the proxy's shutdown order (rules first, then the limiter) needs no extra step.
import { createRedisLimiter, type FailMode, type RedisLimiter } from '../limits/redis-limiter.ts';
import { RedisPodDirectory } from '../rules/pod-directory.ts';
import { RedisRuleSource } from '../rules/redis-source.ts';
import {
  closeRedisClient,
  createRedisClient,
  type RedisClient,
  type RedisConnectionOptions,
} from '../redis/connection.ts';

export interface RedisFleetOptions {
  readonly connection: RedisConnectionOptions;
  readonly prefix: string;
  readonly failMode?: FailMode;
  readonly leaseTtlMs?: number;
  readonly refreshIntervalMs?: number;
}

export interface RedisFleet {
  readonly client: RedisClient;
  /** What the client was built from: the SSRF guard reads the endpoints it names. */
  readonly connection: RedisConnectionOptions;
  readonly rules: RedisRuleSource;
  /** Pod address → namespace, published by the operator; stop() it before limiter.close(). */
  readonly pods: RedisPodDirectory;
  /** close() also closes the shared connection: call it after rules.stop(). */
  readonly limiter: RedisLimiter;
}

export function openRedisFleet(options: RedisFleetOptions): RedisFleet {
  const client = createRedisClient({ connectionName: 'socks4-fleet-proxy', ...options.connection });
  const rules = new RedisRuleSource({
    client,
    prefix: options.prefix,
    ...(options.refreshIntervalMs === undefined ? {} : { refreshIntervalMs: options.refreshIntervalMs }),
  });
  const inner = createRedisLimiter({
    client,
    prefix: options.prefix,
    ...(options.failMode === undefined ? {} : { failMode: options.failMode }),
    ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
    ...(options.connection.commandTimeoutMs === undefined
      ? {}
      : { callTimeoutMs: options.connection.commandTimeoutMs }),
  });
  const limiter: RedisLimiter = {
    admit: (req) => inner.admit(req),
    stats: () => inner.stats(),
    async close() {
      await inner.close();
      await closeRedisClient(client);
    },
  };
  const pods = new RedisPodDirectory({ client, prefix: options.prefix });
  return { client, rules, pods, limiter, connection: options.connection };
}
