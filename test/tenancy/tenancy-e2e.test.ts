// Tenancy end to end: a real kube-apiserver + etcd, the operator under exactly deploy/rbac/, a real
// redis-server and a real proxy process. There is no kubelet, so pods never run: each is created
// Pending and given an address on 127.0.0.0/8 with a status patch, and its "client" is a socket
// bound to that address. The destination is a sink on 127.0.0.1.
import { CoreV1Api } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { CLUSTER_PLURAL } from '../../operator/kube-api.ts';
import { GROUP, VERSION } from '../../src/policy/types.ts';
import { startOperator, type Operator } from '../../operator/operator.ts';
import type { RedisClient } from '../../src/redis/connection.ts';
import { podKeys } from '../../src/rules/redis-keys.ts';
import { createLogger } from '../../src/telemetry/logging.ts';
import { getOps, startProxyProcess, startSink, type ProxyProcess } from '../helpers/fleet.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { socks4Request } from '../helpers/servers.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  loadKubeConfig,
  readPublished,
  startTestCluster,
  waitFor,
  type TestCluster,
} from '../operator/cluster.ts';

const PREFIX = 'tenancy-e2e';
/** README, Tenancy: a pod deleted or re-addressed changes its client's tier within a second. */
const ATTRIBUTION_BOUND_MS = 1_000;

let cluster: TestCluster;
let redisServer: RedisServer;
let redis: RedisClient;
let operator: Operator;
let proxy: ProxyProcess;
let sink: Awaited<ReturnType<typeof startSink>>;
let core: CoreV1Api;

const toSink = ['127.0.0.1/32'];

before(async () => {
  [cluster, redisServer, sink] = await Promise.all([startTestCluster(), startRedis(), startSink()]);
  redis = await connectRedis(redisServer.url);
  const admin = loadKubeConfig(cluster.plane.kubeconfigPath);
  core = admin.makeApiClient(CoreV1Api);
  for (const ns of ['team-a', 'team-b']) {
    await cluster.createNamespace(ns);
    // No controller-manager here: the ServiceAccount admission plugin wants `default` to exist.
    await cluster.kubectl('create', 'serviceaccount', 'default', '-n', ns);
  }
  // The reproduction: team-b's priority-0 Deny-all, and team-a's Allow.
  await createPolicy(cluster.admin, 'team-b', 'lockdown', { priority: 0, rules: [{ name: 'all', action: 'Deny' }] });
  await createPolicy(cluster.admin, 'team-a', 'open', {
    rules: [{ name: 'sink', action: 'Allow', to: { cidrs: toSink } }],
  });
  await cluster.admin.createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: CLUSTER_PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'ClusterSocks4Policy',
      metadata: { name: 'guard' },
      spec: {
        priority: 10,
        rules: [
          { name: 'no-blocked', action: 'Deny', from: { userids: ['blocked'] } },
          { name: 'to-namespace', action: 'Pass', from: { userids: ['passed'] } },
          // Would refuse "passed" if Pass did not skip the rest of the cluster tier.
          { name: 'no-passed', action: 'Deny', from: { userids: ['passed'] } },
        ],
      },
    },
  });
  operator = await startOperator({
    kubeConfig: loadKubeConfig(cluster.operatorKubeconfig),
    redis: { url: redisServer.url },
    prefix: PREFIX,
    namespaces: null,
    identity: 'tenancy-operator',
    lease: null,
    workers: 2,
    resyncMs: 0,
    ops: null,
    logger: createLogger({ level: 'warn', destination: 2 }),
  });
  await waitFor('all three policies published', async () => {
    const view = await readPublished(redis, PREFIX);
    return view !== null && view.document.policies.length === 3 && view.document.tenancy === 'Namespaced'
      ? true
      : undefined;
  });
  proxy = await startProxyProcess(['--redis-url', redisServer.url, '--redis-prefix', PREFIX]);
});

after(async () => {
  await proxy?.kill();
  await operator?.stop();
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([cluster?.stop(), redisServer?.stop(), sink?.close()]);
});

async function createPod(namespace: string, name: string, ip: string): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: { metadata: { name }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app' }] } },
  });
  await setPodAddress(namespace, name, ip);
}

async function setPodAddress(namespace: string, name: string, ip: string): Promise<void> {
  await core.patchNamespacedPodStatus({
    namespace,
    name,
    body: [
      { op: 'add', path: '/status/podIP', value: ip },
      { op: 'add', path: '/status/podIPs', value: [{ ip }] },
    ],
  });
}

/** One CONNECT to the sink from `source` as `userId`; the reply code (90, 91) or -1. */
async function connectFrom(source: string, userId: string, onPort?: (port: number) => void): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: source });
  socket.on('error', () => {});
  try {
    await once(socket, 'connect');
    onPort?.(socket.localPort as number);
    socket.write(socks4Request(1, sink.port, '127.0.0.1', userId));
    const reply = await new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      const timer = setTimeout(() => resolve(got), 5_000);
      socket.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 8) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
    });
    return reply.length >= 8 ? (reply[1] as number) : -1;
  } finally {
    socket.destroy();
  }
}

interface LoggedSession {
  reply: number;
  clientPort?: number;
  tier?: string;
  clientNamespace?: string;
  rule?: string;
  reason?: string;
}

function sessionsFrom(source: string): LoggedSession[] {
  return proxy
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"session ') && l.includes(`"client":"${source}"`))
    .map((l) => JSON.parse(l) as LoggedSession);
}

/**
 * One CONNECT from `source`, and the proxy's log line for it: the line is written when the
 * session ends, which may be a moment after the client saw the reply.
 */
async function decide(source: string, userId: string): Promise<LoggedSession> {
  // Found by its client port: log lines are buffered (up to 100 ms), so the lines of earlier
  // sessions from the same address may still be arriving.
  let port = -1;
  const code = await connectFrom(source, userId, (p) => {
    port = p;
  });
  const logged = await waitFor(
    `the session from ${source}:${port} logged`,
    () => sessionsFrom(source).find((s) => s.clientPort === port),
    5_000,
    10,
  );
  assert.equal(logged.reply, code);
  return logged;
}

/** Polls until `source` gets `code`; returns how long that took after `since`. */
async function untilReply(source: string, userId: string, code: number, since: number): Promise<number> {
  return await waitFor(
    `${source} to get ${code}`,
    async () => ((await connectFrom(source, userId)) === code ? performance.now() - since : undefined),
    10_000,
    20,
  );
}

test("pods are attributed to their namespace; team-b's priority-0 Deny-all leaves team-a alone", async () => {
  await createPod('team-a', 'client-a', '127.0.0.11');
  await createPod('team-b', 'client-b', '127.0.0.12');
  await untilReply('127.0.0.11', 'alice', 90, performance.now());
  assert.deepEqual(pick(await decide('127.0.0.11', 'alice')), {
    reply: 90,
    tier: 'Namespace',
    clientNamespace: 'team-a',
    rule: 'team-a/open/sink',
  });
  assert.deepEqual(pick(await decide('127.0.0.12', 'bob')), {
    reply: 91,
    tier: 'Namespace',
    clientNamespace: 'team-b',
    rule: 'team-b/lockdown/all',
  });
});

test("a client that is no pod is governed by cluster policies alone: team-a's Allow does not reach it", async () => {
  const logged = await decide('127.0.0.13', 'alice');
  assert.equal(logged.reply, 91);
  assert.equal(logged.tier, 'Default');
  assert.equal(logged.reason, 'NoRuleMatched');
  assert.equal(logged.clientNamespace, undefined);
});

test('a cluster Deny beats a namespace Allow', async () => {
  assert.deepEqual(pick(await decide('127.0.0.11', 'blocked')), {
    reply: 91,
    tier: 'Cluster',
    clientNamespace: 'team-a',
    rule: 'guard/no-blocked',
  });
});

test('Pass skips the rest of the cluster tier and the namespace decides', async () => {
  assert.deepEqual(pick(await decide('127.0.0.11', 'passed')), {
    reply: 90,
    tier: 'Namespace',
    clientNamespace: 'team-a',
    rule: 'team-a/open/sink',
  });
  // In team-b the same Pass lands on the Deny-all.
  assert.deepEqual(pick(await decide('127.0.0.12', 'passed')), {
    reply: 91,
    tier: 'Namespace',
    clientNamespace: 'team-b',
    rule: 'team-b/lockdown/all',
  });
});

test('the namespace shows in metrics, with the tier', async () => {
  const { body } = await getOps(proxy.opsPort, '/metrics');
  assert.match(
    body,
    /^socks4_tenant_sessions_total\{client_namespace="team-a",tier="Namespace",decision="allow"\} [1-9]/m,
  );
  assert.match(
    body,
    /^socks4_tenant_sessions_total\{client_namespace="team-b",tier="Namespace",decision="deny"\} [1-9]/m,
  );
  assert.match(body, /^socks4_tenant_sessions_total\{client_namespace="",tier="Default",decision="deny"\} [1-9]/m);
});

test(`a re-addressed pod changes its clients' tier within ${ATTRIBUTION_BOUND_MS} ms, without a new rules snapshot`, async (t) => {
  await createPod('team-a', 'mover', '127.0.0.15');
  await untilReply('127.0.0.15', 'alice', 90, performance.now());
  const snapshotBefore = (await readPublished(redis, PREFIX))?.version;
  const started = performance.now();
  await setPodAddress('team-a', 'mover', '127.0.0.16');
  const took = await untilReply('127.0.0.16', 'alice', 90, started);
  t.diagnostic(`re-addressed pod attributed after ${Math.round(took)} ms`);
  assert.ok(took < ATTRIBUTION_BOUND_MS, `the new address was attributed after ${Math.round(took)} ms`);
  const old = await decide('127.0.0.15', 'alice');
  assert.deepEqual(
    [old.reply, old.tier, old.clientNamespace],
    [91, 'Default', undefined],
    'the old address is no pod any more',
  );
  assert.equal((await readPublished(redis, PREFIX))?.version, snapshotBefore, 'pod changes never republish the rules');
  assert.equal(await redis.hget(podKeys(PREFIX).addresses, '127.0.0.16'), 'team-a');
  assert.equal(await redis.hget(podKeys(PREFIX).addresses, '127.0.0.15'), null);
});

test(`a deleted pod's address loses its namespace within ${ATTRIBUTION_BOUND_MS} ms`, async (t) => {
  const started = performance.now();
  await core.deleteNamespacedPod({ namespace: 'team-a', name: 'client-a' });
  const took = await untilReply('127.0.0.11', 'alice', 91, started);
  t.diagnostic(`deleted pod's address unattributed after ${Math.round(took)} ms`);
  assert.ok(took < ATTRIBUTION_BOUND_MS, `the deleted pod's address was still team-a's after ${Math.round(took)} ms`);
  assert.equal((await decide('127.0.0.11', 'alice')).tier, 'Default');
  // Meanwhile the other namespace's pod is still what it was.
  const other = await decide('127.0.0.12', 'bob');
  assert.deepEqual([other.reply, other.clientNamespace], [91, 'team-b']);
});

function pick(s: LoggedSession): Record<string, unknown> {
  return { reply: s.reply, tier: s.tier, clientNamespace: s.clientNamespace, rule: s.rule };
}
