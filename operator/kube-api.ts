// The operator's few calls to the Kubernetes API, on @kubernetes/client-node: list policies,
// patch a finalizer, patch status, record an Event, read and write the Lease. Each call is one
// request; retries belong to the work queue. The verbs used here are exactly those granted by
// deploy/rbac/ (test/operator/rbac.test.ts runs the operator under nothing else).
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { CLUSTER_KIND, GROUP, KIND, VERSION } from '../src/policy/types.ts';
import type { LeaseClient, LeaseView, LeaseWrite } from './leader-election.ts';
import { FINALIZER, type ObservedPolicy, type PolicyEvent, type PolicyStatus } from './reconcile.ts';

export const PLURAL = 'socks4policies';
export const CLUSTER_PLURAL = 'clustersocks4policies';
/** Events about cluster-scoped objects go here, as kubectl and the controllers do. */
const CLUSTER_EVENT_NAMESPACE = 'default';

export interface PolicyList {
  readonly items: ObservedPolicy[];
  readonly metadata?: { readonly resourceVersion?: string };
}

export interface PolicyApi {
  /** null lists every namespace. */
  list(namespace: string | null): Promise<PolicyList>;
  addFinalizer(obj: ObservedPolicy): Promise<void>;
  removeFinalizer(obj: ObservedPolicy): Promise<void>;
  patchStatus(obj: ObservedPolicy, status: PolicyStatus): Promise<void>;
  recordEvent(obj: ObservedPolicy, event: PolicyEvent): Promise<void>;
}

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * Makes every request through `kubeConfig` share one connection pool. client-node 2.0 builds a
 * fresh undici Agent (so a fresh TCP + TLS connection) for every API call; at a few thousand
 * patches that handshake work dominated both the operator's and the API server's CPU. The
 * cluster and credentials of a KubeConfig never change in this process, so the first Agent
 * serves them all; bearer tokens travel in headers and keep being read per request.
 */
export function shareConnections(kubeConfig: KubeConfig): { close(): Promise<void> } {
  const authenticate = kubeConfig.applySecurityAuthentication.bind(kubeConfig);
  let shared: Dispatcher | undefined;
  kubeConfig.applySecurityAuthentication = async (context: RequestContext): Promise<void> => {
    await authenticate(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    shared ??= fresh;
    if (fresh !== shared) {
      context.setDispatcher(shared);
      void fresh.close().catch(() => {}); // never connected: nothing to wait for
    }
  };
  return {
    // Idle keep-alive connections would otherwise hold the process open after stop.
    close: async () => {
      kubeConfig.applySecurityAuthentication = authenticate;
      await shared?.destroy().catch(() => {});
    },
  };
}

/** The HTTP status of a failed API call, or null when the request never got an answer. */
export function apiStatusCode(error: unknown): number | null {
  return error instanceof ApiException ? (error.code as number) : null;
}

/** The API server's own words for a failed call (its Status message), for logs. */
export function describeApiError(error: unknown): string {
  if (error instanceof ApiException) {
    const body = (typeof error.body === 'string' ? safeJson(error.body) : error.body) as { message?: unknown } | null;
    return `HTTP ${error.code}: ${typeof body?.message === 'string' ? body.message : 'no message'}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function nameOf(obj: ObservedPolicy): { name: string; namespace: string } {
  return { name: obj.metadata.name ?? '', namespace: obj.metadata.namespace ?? '' };
}

/**
 * The API of both kinds: list() lists Socks4Policy objects; every other call goes to the object's
 * own kind (a ClusterSocks4Policy has no namespace in its paths).
 */
export function createPolicyApi(kubeConfig: KubeConfig, reporter: { component: string; instance: string }): PolicyApi {
  const namespaced = createNamespacedPolicyApi(kubeConfig, reporter);
  const cluster = createClusterPolicyApi(kubeConfig, reporter);
  const pick = (obj: ObservedPolicy): PolicyApi => (obj.kind === CLUSTER_KIND ? cluster : namespaced);
  return {
    list: (namespace) => namespaced.list(namespace),
    addFinalizer: (obj) => pick(obj).addFinalizer(obj),
    removeFinalizer: (obj) => pick(obj).removeFinalizer(obj),
    patchStatus: (obj, status) => pick(obj).patchStatus(obj, status),
    recordEvent: (obj, event) => pick(obj).recordEvent(obj, event),
  };
}

/** ClusterSocks4Policy: list() ignores its namespace argument (the kind has none). */
export function createClusterPolicyApi(
  kubeConfig: KubeConfig,
  reporter: { component: string; instance: string },
): PolicyApi {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const target = { group: GROUP, version: VERSION, plural: CLUSTER_PLURAL };
  const name = (obj: ObservedPolicy): string => obj.metadata.name ?? '';
  return {
    async list() {
      return (await custom.listClusterCustomObject(target)) as PolicyList;
    },
    async addFinalizer(obj) {
      await custom.patchClusterCustomObject({ ...target, name: name(obj), body: finalizerAddition(obj) });
    },
    async removeFinalizer(obj) {
      const body = finalizerRemoval(obj);
      if (body !== null) await custom.patchClusterCustomObject({ ...target, name: name(obj), body });
    },
    async patchStatus(obj, status) {
      await custom.patchClusterCustomObjectStatus({
        ...target,
        name: name(obj),
        body: [{ op: 'add', path: '/status', value: status }],
      });
    },
    async recordEvent(obj, event) {
      await core.createNamespacedEvent({
        namespace: CLUSTER_EVENT_NAMESPACE,
        body: eventBody(obj, CLUSTER_KIND, CLUSTER_EVENT_NAMESPACE, event, reporter),
      });
    },
  };
}

function finalizerAddition(obj: ObservedPolicy): object[] {
  const existing = obj.metadata.finalizers;
  // JSON patch (the client's default for custom objects). Appending to an existing list
  // cannot drop anyone's finalizer; creating the list is guarded by the resourceVersion read.
  return existing === undefined || existing.length === 0
    ? [
        { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
        { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] },
      ]
    : [{ op: 'add', path: '/metadata/finalizers/-', value: FINALIZER }];
}

function finalizerRemoval(obj: ObservedPolicy): object[] | null {
  const index = obj.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
  if (index === -1) return null;
  // Test the element itself: other controllers may edit their own finalizers meanwhile.
  const path = `/metadata/finalizers/${index}`;
  return [
    { op: 'test', path, value: FINALIZER },
    { op: 'remove', path },
  ];
}

function eventBody(
  obj: ObservedPolicy,
  kind: string,
  namespace: string,
  event: PolicyEvent,
  reporter: { component: string; instance: string },
) {
  const name = obj.metadata.name ?? '';
  const now = new Date();
  return {
    metadata: { generateName: `${name}.`, namespace },
    involvedObject: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind,
      name,
      ...(kind === CLUSTER_KIND ? {} : { namespace }),
      ...(obj.metadata.uid === undefined ? {} : { uid: obj.metadata.uid }),
      ...(obj.metadata.resourceVersion === undefined ? {} : { resourceVersion: obj.metadata.resourceVersion }),
    },
    type: event.type,
    reason: event.reason,
    message: event.message,
    action: 'Validate',
    count: 1,
    firstTimestamp: now,
    lastTimestamp: now,
    source: { component: reporter.component },
    reportingComponent: reporter.component,
    reportingInstance: reporter.instance,
  };
}

function createNamespacedPolicyApi(
  kubeConfig: KubeConfig,
  reporter: { component: string; instance: string },
): PolicyApi {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const target = { group: GROUP, version: VERSION, plural: PLURAL };
  return {
    async list(namespace) {
      const list =
        namespace === null
          ? await custom.listClusterCustomObject(target)
          : await custom.listNamespacedCustomObject({ ...target, namespace });
      return list as PolicyList;
    },
    async addFinalizer(obj) {
      await custom.patchNamespacedCustomObject({ ...target, ...nameOf(obj), body: finalizerAddition(obj) });
    },
    async removeFinalizer(obj) {
      const body = finalizerRemoval(obj);
      if (body !== null) await custom.patchNamespacedCustomObject({ ...target, ...nameOf(obj), body });
    },
    async patchStatus(obj, status) {
      await custom.patchNamespacedCustomObjectStatus({
        ...target,
        ...nameOf(obj),
        body: [{ op: 'add', path: '/status', value: status }],
      });
    },
    async recordEvent(obj, event) {
      const { namespace } = nameOf(obj);
      await core.createNamespacedEvent({ namespace, body: eventBody(obj, KIND, namespace, event, reporter) });
    },
  };
}

function leaseView(lease: V1Lease): LeaseView {
  return {
    resourceVersion: lease.metadata?.resourceVersion ?? '',
    holderIdentity: lease.spec?.holderIdentity ?? null,
    leaseDurationSeconds: lease.spec?.leaseDurationSeconds ?? 0,
    leaseTransitions: lease.spec?.leaseTransitions ?? 0,
  };
}

export function createLeaseClient(kubeConfig: KubeConfig, namespace: string, name: string): LeaseClient {
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  const body = (write: LeaseWrite, resourceVersion?: string, acquireTime?: V1MicroTime): V1Lease => {
    const now = new V1MicroTime();
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
      spec: {
        ...(write.holderIdentity === null ? {} : { holderIdentity: write.holderIdentity }),
        leaseDurationSeconds: write.leaseDurationSeconds,
        leaseTransitions: write.leaseTransitions,
        renewTime: now,
        ...(write.acquired ? { acquireTime: now } : acquireTime === undefined ? {} : { acquireTime }),
      },
    };
  };
  let acquireTime: V1MicroTime | undefined;
  return {
    async get() {
      try {
        const lease = await api.readNamespacedLease({ name, namespace });
        const at = lease.spec?.acquireTime as unknown;
        acquireTime = typeof at === 'string' ? new V1MicroTime(at) : undefined;
        return leaseView(lease);
      } catch (error) {
        if (apiStatusCode(error) === 404) return null;
        throw error;
      }
    },
    async create(write) {
      return leaseView(await api.createNamespacedLease({ namespace, body: body(write) }));
    },
    async update(resourceVersion, write) {
      return leaseView(
        await api.replaceNamespacedLease({ name, namespace, body: body(write, resourceVersion, acquireTime) }),
      );
    },
  };
}
