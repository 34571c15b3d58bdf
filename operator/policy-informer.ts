// The operator's view of Socks4Policy objects (and, through WatchedResource, of ClusterSocks4Policy
// objects and Pods, with the same restart behaviour): one client-node ListWatch per watched scope (the
// whole cluster, or each selected namespace). ListWatch resumes its watch after timeouts and
// relists after 410 Gone by itself; on any other error it stops, and here it is replaced after a
// per-scope exponential backoff by a fresh ListWatch that lists from scratch. The old cache stays
// the visible one until the new list is complete, so the operator never sees (and never
// publishes) a half-empty world, and every key either cache knew is reported as changed.
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { CLUSTER_PLURAL, PLURAL, type PolicyApi } from './kube-api.ts';
import { realScheduler, type Scheduler } from './queue.ts';
import type { ObservedPolicy } from './reconcile.ts';
import { GROUP, policyId, VERSION } from '../src/policy/types.ts';

export interface PolicyStore {
  list(): ObservedPolicy[];
  get(key: string): ObservedPolicy | undefined;
}

/** What an informer watches; Socks4Policy unless told otherwise. */
export interface WatchedResource {
  /** The collection's URL path, across every namespace (null) or in one. */
  path(namespace: string | null): string;
  list(namespace: string | null): Promise<unknown>;
  key(obj: KubernetesObject): string;
  /** One scope whatever `namespaces` says, and keys are bare names. */
  readonly clusterScoped?: boolean;
}

export function socks4PolicyResource(api: PolicyApi): WatchedResource {
  return {
    path: (namespace) =>
      namespace === null
        ? `/apis/${GROUP}/${VERSION}/${PLURAL}`
        : `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PLURAL}`,
    list: (namespace) => api.list(namespace),
    key: (obj) => policyId(obj as ObservedPolicy),
  };
}

/** ClusterSocks4Policy: `api` is createClusterPolicyApi's. */
export function clusterPolicyResource(api: PolicyApi): WatchedResource {
  return {
    path: () => `/apis/${GROUP}/${VERSION}/${CLUSTER_PLURAL}`,
    list: () => api.list(null),
    key: (obj) => policyId(obj as ObservedPolicy),
    clusterScoped: true,
  };
}

export interface PolicyInformerOptions {
  readonly kubeConfig: KubeConfig;
  readonly api: PolicyApi;
  /** Default: Socks4Policy through `api`. */
  readonly resource?: WatchedResource;
  /** null watches every namespace. */
  readonly namespaces: readonly string[] | null;
  /** Called for every added, updated or deleted object, and for every key after a relist. */
  readonly onChange: (key: string) => void;
  readonly onError?: (error: unknown, scope: string, retryInMs: number) => void;
  readonly restartBaseMs?: number;
  readonly restartMaxMs?: number;
  readonly scheduler?: Scheduler;
}

interface Scope {
  readonly namespace: string | null;
  current: ListWatch<KubernetesObject> | null;
  starting: ListWatch<KubernetesObject> | null;
  failures: number;
  timer: unknown;
}

export class PolicyInformer implements PolicyStore {
  readonly #options: PolicyInformerOptions;
  readonly #resource: WatchedResource;
  readonly #scheduler: Scheduler;
  readonly #scopes: Scope[];
  readonly #synced: Promise<void>;
  #markSynced: () => void = () => {};
  #stopped = false;
  restarts = 0;

  constructor(options: PolicyInformerOptions) {
    this.#options = options;
    this.#scheduler = options.scheduler ?? realScheduler;
    this.#resource = options.resource ?? socks4PolicyResource(options.api);
    const namespaces =
      options.namespaces === null || this.#resource.clusterScoped === true ? [null] : [...new Set(options.namespaces)];
    this.#scopes = namespaces.map((namespace) => ({
      namespace,
      current: null,
      starting: null,
      failures: 0,
      timer: null,
    }));
    this.#synced = new Promise((resolve) => {
      this.#markSynced = resolve;
    });
  }

  /** Starts every scope; resolve with whenSynced() for the first complete list. */
  start(): void {
    for (const scope of this.#scopes) void this.#startScope(scope);
  }

  /** True once every scope has listed once. */
  synced(): boolean {
    return this.#scopes.every((s) => s.current !== null);
  }

  whenSynced(): Promise<void> {
    return this.#synced;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const scope of this.#scopes) {
      if (scope.timer !== null) this.#scheduler.clearTimeout(scope.timer);
      scope.timer = null;
      await scope.starting?.stop();
      await scope.current?.stop();
    }
  }

  list(): ObservedPolicy[] {
    return this.#scopes.flatMap((s) => (s.current?.list() ?? []) as ObservedPolicy[]);
  }

  get(key: string): ObservedPolicy | undefined {
    if (this.#resource.clusterScoped === true) return this.#scopes[0]?.current?.get(key) as ObservedPolicy | undefined;
    const slash = key.indexOf('/');
    if (slash === -1) return undefined;
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const scope = this.#scopes.find((s) => s.namespace === null || s.namespace === namespace);
    return scope?.current?.get(name, namespace) as ObservedPolicy | undefined;
  }

  #describe(scope: Scope): string {
    return scope.namespace === null ? 'all namespaces' : `namespace ${scope.namespace}`;
  }

  async #startScope(scope: Scope): Promise<void> {
    if (this.#stopped) return;
    const resource = this.#resource;
    const listWatch = new ListWatch<KubernetesObject>(
      resource.path(scope.namespace),
      new Watch(this.#options.kubeConfig),
      () => resource.list(scope.namespace) as never,
      false,
    );
    let failed = false;
    const onObject = (obj: KubernetesObject): void => {
      if (scope.current === listWatch) this.#options.onChange(resource.key(obj));
    };
    listWatch.on('add', onObject);
    listWatch.on('update', onObject);
    listWatch.on('delete', onObject);
    listWatch.on('error', (error: unknown) => {
      failed = true;
      if (scope.current === listWatch || scope.starting === listWatch) this.#restartScope(scope, error);
    });
    scope.starting = listWatch;
    try {
      await listWatch.start();
    } catch (error) {
      // Errors before any request (credentials that cannot be loaded, say) are thrown, not reported.
      failed = true;
      if (scope.starting === listWatch) this.#restartScope(scope, error);
    }
    if (failed || this.#stopped || scope.starting !== listWatch) return;
    scope.starting = null;
    const previous = scope.current;
    scope.current = listWatch;
    scope.failures = 0;
    await previous?.stop();
    const keys = new Set([...(previous?.list() ?? []), ...listWatch.list()].map((obj) => resource.key(obj)));
    for (const key of keys) this.#options.onChange(key);
    if (this.synced()) this.#markSynced();
  }

  #restartScope(scope: Scope, error: unknown): void {
    if (this.#stopped || scope.timer !== null) return;
    const base = this.#options.restartBaseMs ?? 500;
    const delay = Math.min(base * 2 ** Math.min(scope.failures, 20), this.#options.restartMaxMs ?? 30_000);
    scope.failures++;
    this.restarts++;
    this.#options.onError?.(error, this.#describe(scope), delay);
    const failing = scope.starting;
    scope.starting = null;
    void failing?.stop();
    scope.timer = this.#scheduler.setTimeout(() => {
      scope.timer = null;
      void this.#startScope(scope);
    }, delay);
  }
}
