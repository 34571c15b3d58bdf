// Connection options → an ioredis client: a plain server, Sentinel or Cluster, with or without
// TLS and ACL credentials. Every client is built to fail fast: a limiter sits on the path of new
// sessions, so a command must never wait in a queue for a Redis that is gone. Commands time out
// quickly, nothing is queued while disconnected, and reconnecting goes on forever in the
// background, so recovery needs no restart.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ConnectionOptions as TlsOptions } from 'node:tls';

export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS. */
  readonly url: string;
  /** Override the URL's credentials (a password from the environment, for instance). */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** PEM CA bundle for TLS (rediss:// or TLS Sentinel/Cluster nodes). */
  readonly tlsCa?: string | Buffer | undefined;
  /** Sentinel mode: the sentinels to ask and the master group name. */
  readonly sentinels?: readonly { host: string; port: number }[] | undefined;
  readonly sentinelName?: string | undefined;
  /** Cluster mode: the URL's host is the first seed node; `clusterNodes` adds more. */
  readonly cluster?: boolean | undefined;
  readonly clusterNodes?: readonly { host: string; port: number }[] | undefined;
  /** Per-command timeout (default 500 ms). */
  readonly commandTimeoutMs?: number | undefined;
  /** Connect timeout (default 3 s). */
  readonly connectTimeoutMs?: number | undefined;
  readonly connectionName?: string | undefined;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 500;
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const MAX_RECONNECT_DELAY_MS = 2000;

export interface ParsedRedisUrl {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
}

/** Parses redis:// and rediss:// URLs; throws a message a person can act on. */
export function parseRedisUrl(text: string): ParsedRedisUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not echoed: the text may carry a password (a mistyped REDIS_URL would land in logs).
    throw new Error('not a URL (expected redis://host:port or rediss://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(`"${url.protocol}" is not a Redis URL scheme (use redis:// or rediss://)`);
  }
  const dbText = url.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new Error(`"${dbText}" in the URL path is not a database number`);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: url.port === '' ? 6379 : Number(url.port),
    tls: url.protocol === 'rediss:',
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    db,
  };
}

/** Reconnect forever with capped backoff: a fleet must heal when Redis comes back. */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 100);
}

export type ClientPlan =
  | { readonly kind: 'standalone' | 'sentinel'; readonly options: RedisOptions }
  | { readonly kind: 'cluster'; readonly nodes: { host: string; port: number }[]; readonly options: ClusterOptions };

/** Pure: the ioredis constructor arguments for the given options (tested without a server). */
export function planRedisClient(opts: RedisConnectionOptions): ClientPlan {
  const parsed = parseRedisUrl(opts.url);
  const tls: TlsOptions | undefined = parsed.tls
    ? { ...(opts.tlsCa === undefined ? {} : { ca: opts.tlsCa }), servername: parsed.host }
    : undefined;
  const auth = {
    username: opts.username ?? parsed.username,
    password: opts.password ?? parsed.password,
  };
  const failFast = {
    commandTimeout: opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    // One retry covers a command caught by a reconnect; more would only queue.
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    // How long a closing socket may linger; ioredis arms this timer even for a socket that never
    // connected, which would hold a CLI process open for the 2 s default.
    disconnectTimeout: 200,
    // Admissions and releases of concurrent sessions share one socket write per event-loop turn
    // instead of one each (profiled: ioredis writes were 17 % of proxy CPU in fleet mode).
    enableAutoPipelining: true,
    ...(opts.connectionName === undefined ? {} : { connectionName: opts.connectionName }),
  };
  if (opts.cluster === true) {
    if (opts.sentinels !== undefined) throw new Error('choose Sentinel or Cluster, not both');
    return {
      kind: 'cluster',
      nodes: [{ host: parsed.host, port: parsed.port }, ...(opts.clusterNodes ?? [])],
      options: {
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        slotsRefreshTimeout: failFast.connectTimeout,
        redisOptions: { ...failFast, ...auth, ...(tls === undefined ? {} : { tls }) },
      },
    };
  }
  const common: RedisOptions = {
    ...failFast,
    ...auth,
    db: parsed.db,
    enableOfflineQueue: false,
    retryStrategy: reconnectDelay,
    ...(tls === undefined ? {} : { tls }),
  };
  if (opts.sentinels !== undefined && opts.sentinels.length > 0) {
    if (opts.sentinelName === undefined || opts.sentinelName === '')
      throw new Error('Sentinel mode needs the master name (--redis-sentinel-name)');
    return {
      kind: 'sentinel',
      options: {
        ...common,
        sentinels: opts.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: opts.sentinelName,
        sentinelRetryStrategy: reconnectDelay,
        ...(tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tls }),
      },
    };
  }
  return { kind: 'standalone', options: { ...common, host: parsed.host, port: parsed.port } };
}

/** Builds the client; it connects in the background (see waitForReady). */
export function createRedisClient(opts: RedisConnectionOptions): RedisClient {
  const plan = planRedisClient(opts);
  const client = plan.kind === 'cluster' ? new Cluster(plan.nodes, plan.options) : new Redis(plan.options);
  // Errors are reported where commands fail; an unhandled 'error' event would crash the pod.
  client.on('error', () => {});
  return client;
}

/** Resolves true once the client is ready, false after timeoutMs (it keeps trying afterwards). */
export async function waitForReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  return new Promise((resolve) => {
    const done = (ready: boolean): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ready);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.on('ready', onReady);
  });
}

/** Closes a client without waiting on a dead server; never rejects. */
export async function closeRedisClient(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
