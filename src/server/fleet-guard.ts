// Discovery of the fleet's own endpoints for the SSRF guard (src/policy/guard.ts): the Kubernetes
// API from the environment, `--guard-endpoint`s, and every Redis endpoint the proxy uses — the
// configured URL, seed nodes and sentinels, then whatever ioredis connects to (a Sentinel's
// master, a Cluster's nodes). Names are resolved here, at the edge, to every IPv4 address they
// have, and re-resolved on a timer; the policy engine only ever sees addresses.
import dns from 'node:dns';
import type { Cluster, Redis } from 'ioredis';
import type { FleetEndpoint } from '../policy/fleet-endpoints.ts';
import type { FleetEndpointKind } from '../policy/guard.ts';
import { FleetEndpointSet } from '../policy/fleet-endpoints.ts';
import { GuardedRange } from '../policy/guard.ts';
import { NOT_IPV4, parseIpv4 } from '../policy/ip.ts';
import { parseRedisUrl, type RedisConnectionOptions } from '../redis/connection.ts';

/** A configured endpoint before resolution; `port` null guards every port of the address. */
export interface EndpointSpec {
  readonly kind: FleetEndpointKind;
  readonly host: string;
  readonly port: number | null;
  readonly source: string;
}

/** Every IPv4 address of a name (an address resolves to itself). */
export type LookupAll = (host: string) => Promise<string[]>;

export const lookupAllIPv4: LookupAll = async (host) => {
  const found = await dns.promises.lookup(host, { family: 4, all: true });
  return found.map((a) => a.address);
};

/** A Redis Cluster node also listens on its bus port, port + 10000 by default (redis.conf). */
const CLUSTER_BUS_OFFSET = 10000;
/** Discovered Redis endpoints are kept (a demoted master still holds the fleet's data), up to this many. */
const MAX_DISCOVERED = 1024;
const DEFAULT_REFRESH_MS = 30_000;

/** `HOST`, `HOST:PORT` or `[v6]:PORT` from `--guard-endpoint`; throws a message naming the problem. */
export function parseEndpointSpec(text: string, kind: FleetEndpointKind, source: string): EndpointSpec {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  const port = match?.[3] === undefined ? null : Number(match[3]);
  if (match === null || (port !== null && (port < 1 || port > 65535))) {
    throw new Error(`"${text}" is not HOST or HOST:PORT`);
  }
  return { kind, host: match[1] ?? match[2] ?? '', port, source };
}

/** The API server as a pod sees it (KUBERNETES_SERVICE_HOST/PORT), or null outside a cluster. */
export function kubernetesApiSpec(env: NodeJS.ProcessEnv): EndpointSpec | null {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (host === undefined || host === '') return null;
  const port = Number(env.KUBERNETES_SERVICE_PORT ?? '443');
  return {
    kind: GuardedRange.KubernetesApi,
    host,
    port: Number.isInteger(port) && port > 0 ? port : 443,
    source: 'KUBERNETES_SERVICE_HOST',
  };
}

/**
 * The Redis endpoints the connection options name (never the credentials): the URL's server (or
 * first Cluster seed), every Cluster seed with its bus port, every sentinel.
 */
export function configuredRedisSpecs(connection: RedisConnectionOptions): EndpointSpec[] {
  const specs: EndpointSpec[] = [];
  const add = (host: string, port: number, source: string): void =>
    void specs.push({ kind: GuardedRange.Redis, host, port, source });
  const url = parseRedisUrl(connection.url);
  const sentinels = connection.sentinels ?? [];
  if (sentinels.length > 0) {
    for (const s of sentinels) add(s.host, s.port, `--redis-sentinels ${s.host}:${s.port}`);
    return specs;
  }
  const seeds = [
    { host: url.host, port: url.port },
    ...(connection.cluster === true ? (connection.clusterNodes ?? []) : []),
  ];
  for (const n of seeds) {
    add(n.host, n.port, `${url.tls ? 'rediss' : 'redis'}://${n.host}:${n.port}`);
    if (connection.cluster === true && n.port + CLUSTER_BUS_OFFSET <= 65535)
      add(n.host, n.port + CLUSTER_BUS_OFFSET, 'redis cluster bus');
  }
  return specs;
}

/** Resolves specs to endpoints; names that fail to resolve are returned in `failed`. */
export async function resolveSpecs(
  specs: readonly EndpointSpec[],
  lookup: LookupAll,
): Promise<{ endpoints: FleetEndpoint[]; failed: EndpointSpec[] }> {
  const endpoints: FleetEndpoint[] = [];
  const failed: EndpointSpec[] = [];
  await Promise.all(
    specs.map(async (spec) => {
      const literal = parseIpv4(spec.host);
      let addresses: number[];
      if (literal !== NOT_IPV4) addresses = [literal];
      else {
        try {
          addresses = (await lookup(spec.host)).map(parseIpv4).filter((ip) => ip !== NOT_IPV4);
        } catch {
          addresses = [];
        }
        if (addresses.length === 0) failed.push(spec);
      }
      for (const ip of addresses) endpoints.push({ kind: spec.kind, ip, port: spec.port, source: spec.source });
    }),
  );
  return { endpoints, failed };
}

type RedisClient = Redis | Cluster;

function isCluster(client: RedisClient): client is Cluster {
  return typeof (client as Cluster).nodes === 'function';
}

/**
 * The endpoints ioredis is connected to right now: the socket's peer of a standalone or Sentinel
 * client (for Sentinel, the master it was pointed to), and every node of a Cluster with its bus
 * port. Sentinels that ioredis learned from `SENTINEL sentinels` are read from its connector
 * when present (an internal field; absent, the configured sentinels still stand).
 */
export function connectedRedisSpecs(client: RedisClient): EndpointSpec[] {
  const specs: EndpointSpec[] = [];
  const add = (host: string | undefined, port: number | undefined, source: string): void => {
    if (host !== undefined && host !== '' && port !== undefined && port > 0)
      specs.push({ kind: GuardedRange.Redis, host, port, source });
  };
  if (isCluster(client)) {
    for (const node of client.nodes('all')) {
      const { host, port } = node.options;
      add(host, port, 'redis cluster node');
      if (port !== undefined && port + CLUSTER_BUS_OFFSET <= 65535)
        add(host, port + CLUSTER_BUS_OFFSET, 'redis cluster bus');
      add(node.stream?.remoteAddress, node.stream?.remotePort, 'redis cluster node');
    }
    return specs;
  }
  add(client.stream?.remoteAddress, client.stream?.remotePort, 'redis connection');
  const learned = (client as unknown as { connector?: { sentinelIterator?: { sentinels?: unknown } } }).connector
    ?.sentinelIterator?.sentinels;
  if (Array.isArray(learned)) {
    for (const s of learned as { host?: string; port?: number }[])
      add(s.host ?? '127.0.0.1', s.port ?? 26379, 'redis sentinel');
  }
  return specs;
}

export interface FleetGuardOptions {
  /** Configured endpoints: --guard-endpoint, the Redis URL, sentinels, seed nodes, the API server. */
  readonly specs: readonly EndpointSpec[];
  /** The proxy's Redis client, followed as it connects (Sentinel failover, Cluster topology). */
  readonly redis?: RedisClient | null;
  readonly lookup?: LookupAll;
  readonly refreshMs?: number;
  /** Told about names that do not resolve (the guard cannot protect what it cannot find). */
  readonly onUnresolved?: (specs: EndpointSpec[]) => void;
}

export interface FleetGuard {
  readonly endpoints: FleetEndpointSet;
  /** Resolved once: the proxy awaits this before it accepts clients. */
  readonly ready: Promise<void>;
  stop(): void;
}

export function startFleetGuard(options: FleetGuardOptions): FleetGuard {
  const endpoints = new FleetEndpointSet();
  const lookup = options.lookup ?? lookupAllIPv4;
  const discovered = new Map<string, FleetEndpoint>();
  let stopped = false;

  const refreshConfigured = async (): Promise<void> => {
    const { endpoints: found, failed } = await resolveSpecs(options.specs, lookup);
    if (stopped) return;
    endpoints.replace('configured', found);
    if (failed.length > 0) options.onUnresolved?.(failed);
  };
  const learnFromRedis = async (): Promise<void> => {
    const client = options.redis;
    if (client === undefined || client === null) return;
    const { endpoints: found } = await resolveSpecs(connectedRedisSpecs(client), lookup);
    if (stopped) return;
    for (const e of found) {
      if (discovered.size >= MAX_DISCOVERED) break;
      discovered.set(`${e.ip}:${e.port}`, e);
    }
    endpoints.replace('discovered', [...discovered.values()]);
  };
  const learn = (): void => void learnFromRedis();
  const client = options.redis ?? null;
  if (client !== null) {
    client.on('connect', learn);
    client.on('ready', learn);
    if (isCluster(client)) {
      client.on('+node', learn);
      client.on('refresh', learn);
    }
  }
  const timer = setInterval(() => {
    void refreshConfigured();
    learn();
  }, options.refreshMs ?? DEFAULT_REFRESH_MS);
  timer.unref();
  const ready = Promise.all([refreshConfigured(), learnFromRedis()]).then(() => undefined);
  return {
    endpoints,
    ready,
    stop() {
      stopped = true;
      clearInterval(timer);
      if (client !== null) {
        client.off('connect', learn);
        client.off('ready', learn);
        client.off('+node', learn);
        client.off('refresh', learn);
      }
    },
  };
}
