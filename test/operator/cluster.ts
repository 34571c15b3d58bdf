// Shared setup for the operator's tests on a real control plane: the CRD and the operator's RBAC
// applied from deploy/ exactly as shipped, a static-token user bound to nothing but those rules
// (cluster-wide, or in the watched namespaces only, the two ways the chart binds them),
// and small helpers to read what the operator published to Redis. One plane per test file.
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PLURAL, shareConnections } from '../../operator/kube-api.ts';
import { GROUP, VERSION } from '../../src/policy/types.ts';
import type { ObservedPolicy } from '../../operator/reconcile.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import type { SnapshotDocument } from '../../src/rules/snapshot-document.ts';
import { startKubeControlPlane, type KubeControlPlane } from '../helpers/kube-harness.ts';
import { repoRoot } from '../helpers/spawn.ts';

export const CRD_PATH = join(repoRoot, 'deploy/crd/socks4policies.yaml');
export const CLUSTER_CRD_PATH = join(repoRoot, 'deploy/crd/clustersocks4policies.yaml');
export const CLUSTER_POLICIES_ROLE_PATH = join(repoRoot, 'deploy/rbac/operator-cluster-policies-role.yaml');
export const CLUSTER_ROLE_PATH = join(repoRoot, 'deploy/rbac/operator-clusterrole.yaml');
export const LEASE_ROLE_PATH = join(repoRoot, 'deploy/rbac/operator-leader-election-role.yaml');
/** Where the operator's Lease lives, as the chart's release namespace would. */
export const OPERATOR_NAMESPACE = 'socks4-fleet';
export const OPERATOR_USER = {
  token: 'operator-token-for-tests-0123456789',
  user: 'socks4-fleet-operator',
  groups: ['socks4-fleet:operators'],
} as const;

export interface TestCluster {
  readonly plane: KubeControlPlane;
  /** kubeconfig of the operator's user: RBAC = exactly deploy/rbac/. */
  readonly operatorKubeconfig: string;
  readonly admin: CustomObjectsApi;
  kubectl(...args: string[]): Promise<string>;
  kubectlAs(kubeconfig: string, ...args: string[]): Promise<string>;
  createNamespace(name: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `watchNamespaces` grants the operator's ClusterRole only in those namespaces (RoleBindings,
 * created with the namespaces), as the chart does for `operator.watchNamespaces`; without it the
 * grant is cluster-wide (ClusterRoleBinding). `leaseRole: false` grants no Lease rights at all,
 * as the chart does with leader election off.
 */
export async function startTestCluster(
  options: { watchNamespaces?: readonly string[]; leaseRole?: boolean } = {},
): Promise<TestCluster> {
  const plane = await startKubeControlPlane({ extraTokens: [OPERATOR_USER] });
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.KUBECONFIG;
  const kubectlAs = async (kubeconfig: string, ...args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(join(repoRoot, 'bin/kubectl'), ['--kubeconfig', kubeconfig, ...args], {
      env,
      timeout: 60_000,
    });
    return stdout;
  };
  const kubectl = (...args: string[]) => kubectlAs(plane.kubeconfigPath, ...args);
  try {
    await kubectl(
      'apply',
      '-f',
      CRD_PATH,
      '-f',
      CLUSTER_CRD_PATH,
      '-f',
      CLUSTER_ROLE_PATH,
      '-f',
      CLUSTER_POLICIES_ROLE_PATH,
    );
    // Cluster-scoped kind: bound cluster-wide whichever way the rest is granted, as the chart does.
    await kubectl(
      'create',
      'clusterrolebinding',
      'socks4-fleet-operator-cluster-policies',
      '--clusterrole=socks4-fleet-operator-cluster-policies',
      `--user=${OPERATOR_USER.user}`,
    );
    await kubectl('create', 'namespace', OPERATOR_NAMESPACE);
    if (options.leaseRole !== false) {
      await kubectl('apply', '-n', OPERATOR_NAMESPACE, '-f', LEASE_ROLE_PATH);
      await kubectl(
        'create',
        'rolebinding',
        'socks4-fleet-operator-leader-election',
        '-n',
        OPERATOR_NAMESPACE,
        '--role=socks4-fleet-operator-leader-election',
        `--user=${OPERATOR_USER.user}`,
      );
    }
    if (options.watchNamespaces === undefined) {
      await kubectl(
        'create',
        'clusterrolebinding',
        'socks4-fleet-operator',
        '--clusterrole=socks4-fleet-operator',
        `--user=${OPERATOR_USER.user}`,
      );
    }
    for (const ns of options.watchNamespaces ?? []) {
      await kubectl('create', 'namespace', ns);
      await kubectl(
        'create',
        'rolebinding',
        'socks4-fleet-operator',
        '-n',
        ns,
        '--clusterrole=socks4-fleet-operator',
        `--user=${OPERATOR_USER.user}`,
      );
    }
    await kubectl(
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      'crd/socks4policies.socks4-fleet.io',
      'crd/clustersocks4policies.socks4-fleet.io',
    );
  } catch (error) {
    await plane.stop();
    throw error;
  }
  const adminConfig = new KubeConfig();
  adminConfig.loadFromFile(plane.kubeconfigPath);
  const adminConnections = shareConnections(adminConfig); // one TLS handshake, not one per call
  return {
    plane,
    operatorKubeconfig: plane.writeKubeconfig(OPERATOR_USER.token, 'operator'),
    admin: adminConfig.makeApiClient(CustomObjectsApi),
    kubectl,
    kubectlAs,
    createNamespace: async (name) => void (await kubectl('create', 'namespace', name)),
    stop: async () => {
      await adminConnections.close();
      await plane.stop();
    },
  };
}

export function loadKubeConfig(path: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(path);
  return config;
}

export function policyManifest(namespace: string, name: string, spec: unknown): Record<string, unknown> {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'Socks4Policy', metadata: { name, namespace }, spec };
}

const target = { group: GROUP, version: VERSION, plural: PLURAL };

export async function createPolicy(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
  spec: unknown,
): Promise<ObservedPolicy> {
  return (await api.createNamespacedCustomObject({
    ...target,
    namespace,
    body: policyManifest(namespace, name, spec),
  })) as ObservedPolicy;
}

/** Replaces the spec (JSON patch), bumping the generation. */
export async function updatePolicySpec(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
  spec: unknown,
): Promise<ObservedPolicy> {
  return (await api.patchNamespacedCustomObject({
    ...target,
    namespace,
    name,
    body: [{ op: 'replace', path: '/spec', value: spec }],
  })) as ObservedPolicy;
}

export async function deletePolicy(api: CustomObjectsApi, namespace: string, name: string): Promise<void> {
  await api.deleteNamespacedCustomObject({ ...target, namespace, name });
}

/** The policy, or null once it is gone from the API server. */
export async function getPolicy(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
): Promise<ObservedPolicy | null> {
  try {
    return (await api.getNamespacedCustomObject({ ...target, namespace, name })) as ObservedPolicy;
  } catch (error) {
    if ((error as { code?: number }).code === 404) return null;
    throw error;
  }
}

export async function listPolicies(api: CustomObjectsApi): Promise<ObservedPolicy[]> {
  return ((await api.listClusterCustomObject(target)) as { items: ObservedPolicy[] }).items;
}

export interface PublishedView {
  readonly version: string;
  readonly document: SnapshotDocument;
  /** `namespace/name` → spec, as the pods will load it. */
  readonly specs: ReadonlyMap<string, unknown>;
}

export async function connectRedis(url: string): Promise<RedisClient> {
  const client = createRedisClient({ url, commandTimeoutMs: 5_000 });
  if (!(await waitForReady(client, 5_000))) throw new Error(`redis at ${url} not ready`);
  return client;
}

export { closeRedisClient };

/** The snapshot the rules pointer names now, or null when none is published. */
export async function readPublished(redis: RedisClient, prefix: string): Promise<PublishedView | null> {
  const keys = ruleKeys(prefix);
  const version = await redis.get(keys.pointer);
  if (version === null) return null;
  const json = await redis.get(keys.snapshot(version));
  if (json === null) throw new Error(`pointer names ${version} but its snapshot is missing`);
  const document = JSON.parse(json) as SnapshotDocument;
  const specs = new Map(
    document.policies.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p.spec as unknown]),
  );
  return { version, document, specs };
}

/** Polls `probe` every `intervalMs` until it returns a value (not undefined); bounded by `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : `: ${(lastError as Error).message}`}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The Ready condition of a policy as the API server holds it. */
export function readyOf(
  obj: ObservedPolicy | null,
):
  | { status: string; reason: string; message: string; lastTransitionTime: string; observedGeneration?: number }
  | undefined {
  const conditions = (obj?.status as { conditions?: { type: string }[] } | undefined)?.conditions;
  return conditions?.find((c) => c.type === 'Ready') as never;
}

/** Waits until the policy's Ready condition has `status` ('True' by default); returns the policy. */
export async function waitForPolicyReady(
  api: CustomObjectsApi,
  namespace: string,
  name: string,
  status: 'True' | 'False' = 'True',
  timeoutMs?: number,
): Promise<ObservedPolicy> {
  return await waitFor(
    `${namespace}/${name} Ready=${status}`,
    async () => {
      const obj = await getPolicy(api, namespace, name);
      return obj !== null && readyOf(obj)?.status === status ? obj : undefined;
    },
    timeoutMs,
  );
}

export function statusOf(obj: ObservedPolicy | null): {
  observedGeneration?: number;
  ruleCount?: number;
  snapshotVersion?: string;
} {
  return (obj?.status ?? {}) as never;
}
