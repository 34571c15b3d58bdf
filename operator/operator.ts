// `socks4-fleet operator` assembled: the informers for both policy kinds and for Pods (always
// running, so a standby's cache is warm), Lease leader election (or, with it off, one instance
// that leads from the start), and while leading one Controller term that reconciles and publishes
// the rules, and one PodAddressPublisher that keeps the pod address → namespace map current.
// Publishing uses publishSnapshot, the code path `policy push` uses, marked Namespaced: in the
// operator's fleet a Socks4Policy governs only its own namespace's pods. Nothing is published
// before every informer has listed every watched scope: an empty cache must never become an
// empty snapshot.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { startOpsServer, type OpsServer } from '../src/ops/ops-server.ts';
import {
  closeRedisClient,
  createRedisClient,
  parseRedisUrl,
  type RedisClient,
  type RedisConnectionOptions,
} from '../src/redis/connection.ts';
import { maskRedisUrl, watchRedisProblems } from '../src/redis/problems.ts';
import { ruleKeys, VERSION_PATTERN } from '../src/rules/redis-keys.ts';
import { publishSnapshot } from '../src/rules/publish-snapshot.ts';
import { parseSnapshotDocument } from '../src/rules/snapshot-document.ts';
import { Tenancy } from '../src/policy/types.ts';
import { Controller } from './controller.ts';
import {
  createClusterPolicyApi,
  createLeaseClient,
  createPolicyApi,
  describeApiError,
  shareConnections,
} from './kube-api.ts';
import { LeaderElector, SoleLeader, type Leadership } from './leader-election.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import { PodAddressIndex, podKey, type ObservedPod } from './pod-addresses.ts';
import { PodAddressPublisher } from './pod-publisher.ts';
import { clusterPolicyResource, PolicyInformer, type PolicyStore, type WatchedResource } from './policy-informer.ts';
import type { WorkQueueOptions } from './queue.ts';
import { entriesFromSnapshot, type PublishedSnapshot } from './reconcile.ts';
import { readDuration } from '../src/cli/durations.ts';
import { errorMessage } from '../src/errors.ts';

export interface LeaseOptions {
  readonly namespace: string;
  readonly name: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export interface OperatorOptions {
  readonly kubeConfig: KubeConfig;
  readonly redis: RedisConnectionOptions;
  readonly prefix: string;
  /** null watches every namespace. */
  readonly namespaces: readonly string[] | null;
  /** This instance's name: in the Lease, in the snapshots it publishes, on its API requests. */
  readonly identity: string;
  /**
   * null turns leader election off: this instance publishes from the start and never touches a
   * Lease. Only for a single instance: two of them would both publish.
   */
  readonly lease: LeaseOptions | null;
  readonly workers?: number;
  /** Re-queue every policy and the snapshot this often (0 = never). */
  readonly resyncMs?: number;
  /** /healthz /readyz /metrics; null for none. */
  readonly ops?: { readonly host: string; readonly port: number } | null;
  readonly logger: Logger;
  readonly queue?: WorkQueueOptions;
  readonly informerRestartBaseMs?: number;
}

export interface Operator {
  readonly identity: string;
  readonly opsAddress: AddressInfo | null;
  readonly metrics: OperatorMetrics;
  isLeader(): boolean;
  /** The informer has listed every watched scope. */
  isReady(): boolean;
  /** What the current leadership term published last (null when not leading or not yet). */
  published(): PublishedSnapshot | null;
  /** Finishes in-flight reconciles, releases the Lease, closes every connection. */
  stop(): Promise<void>;
}

export const DEFAULT_WORKERS = 8;
// The flag table holds the default (the CLI and the chart read it there); the table cannot read
// it from here without loading the Kubernetes client into every proxy.
export const DEFAULT_RESYNC_MS = readDuration('resync', undefined);
// Publishing a large snapshot is one big SET; the proxy's 500 ms command budget is for sessions.
const REDIS_COMMAND_TIMEOUT_MS = 5_000;

export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const { kubeConfig, logger, lease, identity } = options;
  const connections = shareConnections(kubeConfig);
  const redis = createRedisClient({
    commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS,
    ...options.redis,
    connectionName: 'socks4-fleet-operator',
  });
  // The cause (WRONGPASS, NOAUTH, TLS, refused...) and the masked URL, at once, not a retry loop's silence.
  const { tls, db } = parseRedisUrl(options.redis.url);
  const unwatchRedis = watchRedisProblems(redis, { url: options.redis.url, tls, db }, (problem, repeats) => {
    logger.error(
      { redis: maskRedisUrl(options.redis.url), prefix: options.prefix, problem: problem.kind, repeats },
      problem.message,
    );
  });
  const api = createPolicyApi(kubeConfig, { component: 'socks4-fleet-operator', instance: identity });
  const clusterApi = createClusterPolicyApi(kubeConfig, { component: 'socks4-fleet-operator', instance: identity });
  let controller: Controller | null = null;
  let pods: PodAddressPublisher | null = null;
  let stopping = false;

  const informerOptions = (what: string) => ({
    kubeConfig,
    namespaces: options.namespaces,
    onError: (error: unknown, scope: string, retryInMs: number) => {
      metrics.informerRestarts.inc();
      logger.warn({ scope, retryInMs, err: describeApiError(error) }, `${what} watch failed; relisting`);
    },
    ...(options.informerRestartBaseMs === undefined ? {} : { restartBaseMs: options.informerRestartBaseMs }),
  });
  const informer = new PolicyInformer({
    ...informerOptions('policy'),
    api,
    onChange: (key) => controller?.enqueue(key),
  });
  const clusterInformer = new PolicyInformer({
    ...informerOptions('cluster policy'),
    api: clusterApi,
    resource: clusterPolicyResource(clusterApi),
    onChange: (key) => controller?.enqueue(key),
  });
  // Both kinds behind one store: cluster keys are bare names, namespaced keys hold a '/'.
  const store: PolicyStore = {
    list: () => [...informer.list(), ...clusterInformer.list()],
    get: (key) => (key.includes('/') ? informer.get(key) : clusterInformer.get(key)),
  };
  const podIndex = new PodAddressIndex();
  const podInformer: PolicyInformer = new PolicyInformer({
    ...informerOptions('pod'),
    api,
    resource: podResource(kubeConfig),
    onChange: (key) => {
      const touched = podIndex.update(key, (podInformer.get(key) as ObservedPod | undefined) ?? null);
      pods?.changed(touched);
    },
  });
  const informers = [informer, clusterInformer, podInformer];
  const synced = (): boolean => informers.every((i) => i.synced());

  const leadership = {
    identity,
    onStartedLeading: () => {
      logger.info({ identity, lease: lease === null ? 'off' : `${lease.namespace}/${lease.name}` }, 'became leader');
      void beginTerm();
    },
    onStoppedLeading: () => {
      logger.info({ identity }, 'no longer leader; stopped publishing');
      const ending = controller;
      controller = null;
      void ending?.stop();
      void pods?.stop();
      pods = null;
    },
  };
  const elector: Leadership =
    lease === null
      ? new SoleLeader(leadership)
      : new LeaderElector({
          ...leadership,
          client: createLeaseClient(kubeConfig, lease.namespace, lease.name),
          leaseDurationMs: lease.leaseDurationMs,
          renewDeadlineMs: lease.renewDeadlineMs,
          retryPeriodMs: lease.retryPeriodMs,
          onError: (error) => logger.debug({ err: describeApiError(error) }, 'lease update failed'),
        });

  const metrics = createOperatorMetrics({
    queueDepth: () => controller?.queueDepth ?? 0,
    isLeader: () => elector.isLeader(),
    watchedPolicies: () => store.list().length,
  });

  async function beginTerm(): Promise<void> {
    await Promise.all(informers.map((i) => i.whenSynced()));
    if (stopping || controller !== null || !elector.isLeader()) return;
    pods = new PodAddressPublisher({ redis, prefix: options.prefix, index: podIndex, logger });
    pods.start();
    controller = new Controller({
      store,
      api,
      publish: (policies, meta) =>
        publishSnapshot(redis, options.prefix, policies, { ...meta, tenancy: Tenancy.Namespaced }),
      readPublished: () => readPublishedSnapshot(redis, options.prefix, logger),
      isLeader: () => elector.isLeader(),
      identity,
      workers: options.workers ?? DEFAULT_WORKERS,
      logger,
      metrics,
      ...(options.queue === undefined ? {} : { queue: options.queue }),
    });
    controller.start();
  }

  for (const i of informers) i.start();
  elector.start();
  // Redis may come back empty (a restart without persistence): publish again at once rather
  // than at the next resync, so new proxy pods do not wait for rules.
  redis.on('ready', () => controller?.enqueueAll());
  const resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
  const resync = resyncMs > 0 ? setInterval(() => controller?.enqueueAll(), resyncMs) : null;
  let ops: OpsServer | null = null;
  if (options.ops !== null && options.ops !== undefined) {
    try {
      ops = await startOpsServer({ ...options.ops, registry: metrics.registry, isReady: () => !stopping && synced() });
    } catch (error) {
      await shutdown(); // the port is taken, say: leave nothing running behind
      throw error;
    }
  }

  return {
    identity,
    opsAddress: ops?.address ?? null,
    metrics,
    isLeader: () => elector.isLeader(),
    isReady: () => !stopping && synced(),
    published: () => controller?.published ?? null,
    async stop() {
      if (stopping) return;
      await shutdown();
      await ops?.close();
    },
  };

  async function shutdown(): Promise<void> {
    stopping = true;
    if (resync !== null) clearInterval(resync);
    // In-flight publishes end before the Lease is released: the successor never overlaps us.
    const ending = controller;
    controller = null;
    await ending?.stop();
    await pods?.stop();
    pods = null;
    await elector.stop({ release: true });
    for (const i of informers) await i.stop();
    await connections.close();
    unwatchRedis();
    await closeRedisClient(redis);
  }
}

/** The snapshot the fleet holds now, or null when there is none or it cannot be read. */
async function readPublishedSnapshot(
  redis: RedisClient,
  prefix: string,
  logger: Logger,
): Promise<PublishedSnapshot | null> {
  const keys = ruleKeys(prefix);
  const version = await redis.get(keys.pointer);
  if (version === null || !VERSION_PATTERN.test(version)) return null;
  const json = await redis.get(keys.snapshot(version));
  if (json === null) return null;
  try {
    return entriesFromSnapshot(version, parseSnapshotDocument(json, version).document.policies);
  } catch (error) {
    logger.warn(
      { version, err: errorMessage(error) },
      'the published snapshot cannot be read back; starting from the cluster alone',
    );
    return null;
  }
}

/** Pods, in the watched namespaces or all of them: their addresses say which namespace a client is in. */
function podResource(kubeConfig: KubeConfig): WatchedResource {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
    path: (namespace) =>
      namespace === null ? '/api/v1/pods' : `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
    list: (namespace) => (namespace === null ? core.listPodForAllNamespaces() : core.listNamespacedPod({ namespace })),
    key: (obj) => podKey(obj as ObservedPod),
  };
}
