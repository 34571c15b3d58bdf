// The operator on a real kube-apiserver + etcd and a real redis-server, running under a token
// whose only rights are deploy/rbac/ (the chart's ClusterRole, granted in the watched namespaces
// only, and the leader-election Role): every behaviour below is also the proof that those rules
// are enough. failover.test.ts runs the CLI with the cluster-wide grant.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FINALIZER } from '../../operator/reconcile.ts';
import { startOperator, type Operator } from '../../operator/operator.ts';
import type { RedisClient } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { createLogger } from '../../src/telemetry/logging.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  deletePolicy,
  getPolicy,
  LEASE_ROLE_PATH,
  listPolicies,
  loadKubeConfig,
  OPERATOR_NAMESPACE,
  OPERATOR_USER,
  readPublished,
  readyOf,
  startTestCluster,
  statusOf,
  updatePolicySpec,
  waitFor,
  waitForPolicyReady,
  type TestCluster,
} from './cluster.ts';

const PREFIX = 'operator-test';
const WATCHED = ['lifecycle', 'mixed', 'quiet', 'bulk'] as const;
const allowWeb = { rules: [{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'], ports: ['443'] } }] };
const denyWithLimits = {
  rules: [{ name: 'capped', action: 'Deny', limits: { concurrentSessions: { max: 5, key: 'Rule' } } }],
};

let cluster: TestCluster;
let redisServer: RedisServer;
let redis: RedisClient;
let operator: Operator;

before(async () => {
  [cluster, redisServer] = await Promise.all([startTestCluster({ watchNamespaces: WATCHED }), startRedis()]);
  redis = await connectRedis(redisServer.url);
  await cluster.createNamespace('unwatched');
  operator = await startOperator({
    kubeConfig: loadKubeConfig(cluster.operatorKubeconfig),
    redis: { url: redisServer.url },
    prefix: PREFIX,
    namespaces: WATCHED,
    identity: 'operator-under-test',
    lease: {
      namespace: OPERATOR_NAMESPACE,
      name: 'socks4-fleet-operator',
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 500,
    },
    workers: 2,
    resyncMs: 1_000,
    ops: { host: '127.0.0.1', port: 0 },
    logger: createLogger({ level: 'warn', destination: 2 }),
  });
  await waitFor('the operator to lead and publish', async () =>
    (await readPublished(redis, PREFIX)) === null ? undefined : true,
  );
});

after(async () => {
  await operator?.stop();
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([cluster?.stop(), redisServer?.stop()]);
});

test('create → the policy is published and Ready=True with observedGeneration and the snapshot version', async () => {
  await createPolicy(cluster.admin, 'lifecycle', 'web', allowWeb);
  const published = await waitFor('web in the snapshot', async () => {
    const view = await readPublished(redis, PREFIX);
    return view?.specs.has('lifecycle/web') === true ? view : undefined;
  });
  assert.deepEqual(published.specs.get('lifecycle/web'), { ...allowWeb, priority: 1000 });
  assert.equal(published.document.source, 'operator operator-under-test');
  const obj = await waitForPolicyReady(cluster.admin, 'lifecycle', 'web');
  assert.deepEqual(obj?.metadata.finalizers, [FINALIZER]);
  assert.equal(readyOf(obj)?.reason, 'Published');
  assert.equal(statusOf(obj).observedGeneration, 1);
  assert.equal(readyOf(obj)?.observedGeneration, 1);
  assert.equal(statusOf(obj).ruleCount, 1);
  assert.equal(statusOf(obj).snapshotVersion, published.version);
});

test('update → a new snapshot carries the new generation, and the status follows', async () => {
  const before = await readPublished(redis, PREFIX);
  const spec = { priority: 50, rules: [...allowWeb.rules, { name: 'rest', action: 'Deny' }] };
  const updated = await updatePolicySpec(cluster.admin, 'lifecycle', 'web', spec);
  assert.equal(updated.metadata.generation, 2);
  const next = await waitFor('the new rules in the snapshot', async () => {
    const view = await readPublished(redis, PREFIX);
    return view !== null && (view.specs.get('lifecycle/web') as { rules?: unknown[] } | undefined)?.rules?.length === 2
      ? view
      : undefined;
  });
  assert.notEqual(next.version, before?.version);
  assert.deepEqual(next.specs.get('lifecycle/web'), spec);
  const obj = await waitFor('status of generation 2', async () => {
    const o = await getPolicy(cluster.admin, 'lifecycle', 'web');
    return statusOf(o).observedGeneration === 2 ? o : undefined;
  });
  assert.equal(statusOf(obj).ruleCount, 2);
  assert.equal(statusOf(obj).snapshotVersion, next.version);
});

test('a Report policy is published as Report and its status says so; the one-word edit switches both', async () => {
  const rules = [{ name: 'no-smtp', action: 'Deny', to: { ports: ['25'] } }];
  await createPolicy(cluster.admin, 'lifecycle', 'trial', { enforcement: 'Report', rules });
  const obj = await waitForPolicyReady(cluster.admin, 'lifecycle', 'trial');
  const status = obj.status as { enforcement?: string; snapshotVersion?: string };
  assert.equal(status.enforcement, 'Report');
  assert.match(
    readyOf(obj)?.message ?? '',
    /in Report mode: the fleet records what it would decide and enforces nothing of it$/,
  );
  const published = await readPublished(redis, PREFIX);
  assert.equal(
    (published?.specs.get('lifecycle/trial') as { enforcement?: string } | undefined)?.enforcement,
    'Report',
  );
  await updatePolicySpec(cluster.admin, 'lifecycle', 'trial', { enforcement: 'Enforce', rules });
  const switched = await waitFor('status of the switched policy', async () => {
    const o = await getPolicy(cluster.admin, 'lifecycle', 'trial');
    return (o?.status as { enforcement?: string } | undefined)?.enforcement === 'Enforce' ? o : undefined;
  });
  assert.doesNotMatch(readyOf(switched)?.message ?? '', /Report/);
  const next = await readPublished(redis, PREFIX);
  // Enforce is the default: the snapshot stores the policy as if the field were omitted.
  assert.deepEqual(next?.specs.get('lifecycle/trial'), { priority: 1000, rules });
  await deletePolicy(cluster.admin, 'lifecycle', 'trial');
});

test('delete → the policy leaves the snapshot before the object disappears; the finalizer is removed', async () => {
  await createPolicy(cluster.admin, 'lifecycle', 'doomed', allowWeb);
  await waitFor('doomed published', async () =>
    (await readPublished(redis, PREFIX))?.specs.has('lifecycle/doomed') === true ? true : undefined,
  );
  await deletePolicy(cluster.admin, 'lifecycle', 'doomed');
  // The moment the API server no longer has it, the fleet must not have it either.
  await waitFor(
    'doomed gone from the API server',
    async () => ((await getPolicy(cluster.admin, 'lifecycle', 'doomed')) === null ? true : undefined),
    20_000,
    5,
  );
  const view = await readPublished(redis, PREFIX);
  assert.equal(view?.specs.has('lifecycle/doomed'), false);
  assert.equal(view?.specs.has('lifecycle/web'), true);
});

test('a semantically invalid policy is Ready=False with a reason and an Event, and the others stay published', async () => {
  await createPolicy(cluster.admin, 'mixed', 'good', allowWeb);
  await createPolicy(cluster.admin, 'mixed', 'bad', denyWithLimits);
  const bad = await waitForPolicyReady(cluster.admin, 'mixed', 'bad', 'False');
  assert.equal(readyOf(bad)?.reason, 'InvalidSpec');
  assert.equal(readyOf(bad)?.message, 'spec.rules[0].limits: only Allow rules take limits (not published)');
  assert.equal(statusOf(bad).observedGeneration, 1);
  await waitForPolicyReady(cluster.admin, 'mixed', 'good');
  const view = await readPublished(redis, PREFIX);
  assert.equal(view?.specs.has('mixed/good'), true);
  assert.equal(view?.specs.has('mixed/bad'), false);
  assert.equal(view?.specs.has('lifecycle/web'), true);
  const events = JSON.parse(
    await cluster.kubectl('get', 'events', '-n', 'mixed', '--field-selector', 'involvedObject.name=bad', '-o', 'json'),
  );
  assert.equal(events.items.length, 1);
  assert.equal(events.items[0].type, 'Warning');
  assert.equal(events.items[0].reason, 'InvalidSpec');
  assert.match(events.items[0].message, /^spec\.rules\[0\]\.limits: /);

  // Fixed: published, Ready flips (and only now does lastTransitionTime move).
  await updatePolicySpec(cluster.admin, 'mixed', 'bad', allowWeb);
  const fixed = await waitForPolicyReady(cluster.admin, 'mixed', 'bad');
  assert.equal(statusOf(fixed).observedGeneration, 2);
  assert.equal((await readPublished(redis, PREFIX))?.specs.has('mixed/bad'), true);

  // Broken again: the fleet keeps generation 2 rather than dropping the policy.
  await updatePolicySpec(cluster.admin, 'mixed', 'bad', denyWithLimits);
  const broken = await waitFor('bad refused again', async () => {
    const o = await getPolicy(cluster.admin, 'mixed', 'bad');
    return statusOf(o).observedGeneration === 3 ? o : undefined;
  });
  assert.equal(readyOf(broken)?.status, 'False');
  assert.match(readyOf(broken)?.message ?? '', /\(the fleet keeps generation 2\)$/);
  assert.deepEqual((await readPublished(redis, PREFIX))?.specs.get('mixed/bad'), { ...allowWeb, priority: 1000 });
});

test('policies outside the selected namespaces are left alone', async () => {
  await createPolicy(cluster.admin, 'unwatched', 'elsewhere', allowWeb);
  await createPolicy(cluster.admin, 'quiet', 'marker', allowWeb);
  // Once a later change in a watched namespace is fully handled, the unwatched one would have been too.
  await waitForPolicyReady(cluster.admin, 'quiet', 'marker');
  const elsewhere = await getPolicy(cluster.admin, 'unwatched', 'elsewhere');
  assert.equal(elsewhere?.metadata.finalizers, undefined);
  assert.equal(elsewhere?.status, undefined);
  assert.equal((await readPublished(redis, PREFIX))?.specs.has('unwatched/elsewhere'), false);
});

test('a snapshot lost from Redis (keys deleted, or a restart without persistence) is published again', async () => {
  const before = await readPublished(redis, PREFIX);
  assert.ok(before !== null);
  const keys = ruleKeys(PREFIX);
  await redis.del(keys.pointer, keys.snapshot(before.version));
  const resynced = await waitFor(
    'the periodic resync to republish',
    async () => (await readPublished(redis, PREFIX)) ?? undefined,
    20_000,
    50,
  );
  assert.equal(resynced.version, before.version, 'same policies, same content-addressed version');
  await redisServer.restart();
  const healed = await waitFor(
    'the snapshot back after the restart',
    async () => (await readPublished(redis, PREFIX).catch(() => null)) ?? undefined,
    20_000,
    50,
  );
  assert.equal(healed.version, before.version);
});

test('a watch refused by the API server is retried with a fresh list, and nothing is published before it succeeds', async () => {
  // A second fleet whose operator may watch `late` only once a RoleBinding grants it.
  await cluster.createNamespace('late');
  await cluster.kubectl('apply', '-n', 'late', '-f', LEASE_ROLE_PATH);
  await cluster.kubectl(
    'create',
    'rolebinding',
    'lease',
    '-n',
    'late',
    '--role=socks4-fleet-operator-leader-election',
    `--user=${OPERATOR_USER.user}`,
  );
  await createPolicy(cluster.admin, 'late', 'p', allowWeb);
  const late = await startOperator({
    kubeConfig: loadKubeConfig(cluster.operatorKubeconfig),
    redis: { url: redisServer.url },
    prefix: 'late',
    namespaces: ['late'],
    identity: 'late',
    lease: {
      namespace: 'late',
      name: 'socks4-fleet-operator',
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 500,
    },
    informerRestartBaseMs: 100,
    logger: createLogger({ level: 'silent' }),
  });
  try {
    await waitFor('the late operator to lead', () => (late.isLeader() ? true : undefined));
    await waitFor('a refused watch', async () =>
      ((await late.metrics.informerRestarts.get()).values[0]?.value ?? 0) >= 2 ? true : undefined,
    );
    assert.equal(late.isReady(), false);
    assert.equal(
      await readPublished(redis, 'late'),
      null,
      'an operator that cannot see the policies must not publish an empty snapshot',
    );
    await cluster.kubectl(
      'create',
      'rolebinding',
      'socks4-fleet-operator',
      '-n',
      'late',
      '--clusterrole=socks4-fleet-operator',
      `--user=${OPERATOR_USER.user}`,
    );
    const view = await waitFor(
      'late/p published',
      async () => {
        const v = await readPublished(redis, 'late');
        return v?.specs.has('late/p') === true ? v : undefined;
      },
      30_000,
      50,
    );
    assert.equal(view.specs.size, 1);
    assert.equal(late.isReady(), true);
  } finally {
    await late.stop();
  }
});

test('a burst of 150 policies converges, and each status names a snapshot that really carries it', async () => {
  const count = 150;
  const publishedBefore =
    (await operator.metrics.publishes.get()).values.find((v) => v.labels.result === 'published')?.value ?? 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < count; i = next++)
        await createPolicy(cluster.admin, 'bulk', `p${i}`, {
          rules: [{ name: 'r', action: 'Allow', to: { ports: [String(1 + i)] } }],
        });
    }),
  );
  const all = await waitFor(
    'all Ready',
    async () => {
      const list = (await listPolicies(cluster.admin)).filter((p) => p.metadata.namespace === 'bulk');
      return list.length === count && list.every((p) => readyOf(p)?.status === 'True') ? list : undefined;
    },
    60_000,
    100,
  );
  const view = await readPublished(redis, PREFIX);
  assert.equal([...(view?.specs.keys() ?? [])].filter((k) => k.startsWith('bulk/')).length, count);
  const documents = new Map<string, Map<string, unknown>>();
  for (const p of all) {
    const version = statusOf(p).snapshotVersion as string;
    if (!documents.has(version)) {
      const json = await redis.get(ruleKeys(PREFIX).snapshot(version));
      assert.ok(json !== null, `snapshot ${version} named by ${p.metadata.name} is not in Redis`);
      const doc = JSON.parse(json) as { policies: { metadata: { namespace: string; name: string }; spec: unknown }[] };
      documents.set(version, new Map(doc.policies.map((d) => [`${d.metadata.namespace}/${d.metadata.name}`, d.spec])));
    }
    // The API server fills in `enforcement: Enforce`; a snapshot stores the default as omitted.
    const { enforcement, ...spec } = p.spec as { enforcement?: string };
    assert.equal(enforcement, 'Enforce');
    assert.deepEqual(documents.get(version)?.get(`bulk/${p.metadata.name}`), spec, `${p.metadata.name} in ${version}`);
  }
  const publishes =
    ((await operator.metrics.publishes.get()).values.find((v) => v.labels.result === 'published')?.value ?? 0) -
    publishedBefore;
  assert.ok(
    publishes >= 1 && publishes < count,
    `${publishes} publishes for ${count} new policies: bursts are coalesced`,
  );
});

test('/healthz, /readyz and /metrics answer on the ops port', async () => {
  const base = `http://127.0.0.1:${operator.opsAddress?.port}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^socks4_operator_leader 1$/m);
  assert.match(metrics, /^socks4_operator_refused_policies 1$/m);
  assert.match(metrics, /^socks4_operator_snapshot_publishes_total\{result="published"\} [1-9]/m);
  assert.match(metrics, /^socks4_operator_reconciles_total\{kind="policy",result="ok"\} [1-9]/m);
});

test("the operator's user holds exactly the rules in deploy/rbac/, nothing more", async () => {
  const can = async (...args: string[]): Promise<boolean> =>
    (
      await cluster
        .kubectlAs(cluster.operatorKubeconfig, 'auth', 'can-i', ...args)
        .catch((e: { stdout?: string }) => e.stdout ?? '')
    ).trim() === 'yes';
  for (const verb of ['list', 'watch', 'patch'])
    assert.equal(await can(verb, 'socks4policies.socks4-fleet.io', '-n', 'mixed'), true, verb);
  assert.equal(
    await can('list', 'socks4policies.socks4-fleet.io', '-A'),
    false,
    'granted in the watched namespaces only',
  );
  assert.equal(await can('list', 'socks4policies.socks4-fleet.io', '-n', 'unwatched'), false);
  assert.equal(await can('patch', 'socks4policies.socks4-fleet.io', '--subresource=status', '-n', 'mixed'), true);
  assert.equal(await can('create', 'events', '-n', 'mixed'), true);
  assert.equal(await can('update', 'leases/socks4-fleet-operator', '-n', OPERATOR_NAMESPACE), true);
  for (const denied of [
    ['create', 'socks4policies.socks4-fleet.io', '-n', 'mixed'],
    ['delete', 'socks4policies.socks4-fleet.io', '-n', 'mixed'],
    ['update', 'socks4policies.socks4-fleet.io', '-n', 'mixed'],
    ['get', 'secrets', '-n', OPERATOR_NAMESPACE],
    ['update', 'leases/kube-controller-manager', '-n', 'kube-system'],
    ['update', 'leases/other-lease', '-n', OPERATOR_NAMESPACE],
    ['delete', 'events', '-n', 'mixed'],
  ]) {
    assert.equal(await can(...denied), false, denied.join(' '));
  }
});
