// `socks4-fleet operator --no-leader-elect`, as the chart runs a single replica, on a real control
// plane whose RBAC grants the operator no Lease rights at all (the chart then renders no Lease
// Role): the one instance publishes, sets Ready and is ready itself without a Lease request. The
// same grant with election on never leads, which shows the grant really lacks them and that a
// Lease request would have shown in the log.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FINALIZER } from '../../operator/reconcile.ts';
import type { RedisClient } from '../../src/redis/connection.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { operatorOpsPort, startOperatorReplica } from '../helpers/operator-replica.ts';
import type { CliProcess } from '../helpers/spawn.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  OPERATOR_NAMESPACE,
  readPublished,
  readyOf,
  startTestCluster,
  waitFor,
  waitForPolicyReady,
  type TestCluster,
} from './cluster.ts';

const allowWeb = { rules: [{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'], ports: ['443'] } }] };

let cluster: TestCluster;
let redisServer: RedisServer;
let redis: RedisClient;
const processes: CliProcess[] = [];

before(async () => {
  [cluster, redisServer] = await Promise.all([startTestCluster({ leaseRole: false }), startRedis()]);
  redis = await connectRedis(redisServer.url);
  await cluster.createNamespace('solo');
  await createPolicy(cluster.admin, 'solo', 'web', allowWeb);
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([cluster?.stop(), redisServer?.stop()]);
});

// Debug level: the elector logs every failed Lease request ("lease update failed").
function startOperator(identity: string, extra: string[]): CliProcess {
  const cli = startOperatorReplica({
    cluster,
    redisUrl: redisServer.url,
    prefix: identity,
    identity,
    args: ['--log-level', 'debug', ...extra],
  });
  processes.push(cli);
  return cli;
}

async function opsUrl(cli: CliProcess): Promise<string> {
  return `http://127.0.0.1:${await operatorOpsPort(cli)}`;
}

async function leasesOutsideKubeSystem(): Promise<string[]> {
  const all = (
    await cluster.kubectl(
      'get',
      'leases',
      '-A',
      '-o',
      'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}',
    )
  ).trim();
  return all.split('\n').filter((lease) => lease !== '' && !lease.startsWith('kube-system/'));
}

test("the operator's user has no Lease rights", async () => {
  const can = async (...args: string[]): Promise<boolean> =>
    (
      await cluster
        .kubectlAs(cluster.operatorKubeconfig, 'auth', 'can-i', ...args)
        .catch((e: { stdout?: string }) => e.stdout ?? '')
    ).trim() === 'yes';
  for (const verb of ['get', 'create', 'update'])
    assert.equal(await can(verb, 'leases.coordination.k8s.io', '-n', OPERATOR_NAMESPACE), false, verb);
  assert.equal(await can('list', 'socks4policies.socks4-fleet.io', '-A'), true);
});

test('--no-leader-elect: the only operator publishes, sets Ready and is ready, and never asks for a Lease', async () => {
  const cli = startOperator('solo', ['--no-leader-elect']);
  const ops = await opsUrl(cli);
  assert.match(cli.output(), /"leaderElection":false/);
  const view = await waitFor('solo/web published', async () => {
    const v = await readPublished(redis, 'solo');
    return v?.specs.has('solo/web') === true ? v : undefined;
  });
  assert.equal(view.document.source, 'operator solo');
  const obj = await waitForPolicyReady(cluster.admin, 'solo', 'web');
  assert.deepEqual(obj?.metadata.finalizers, [FINALIZER]);
  assert.equal(readyOf(obj)?.reason, 'Published');
  assert.equal((await fetch(`${ops}/readyz`)).status, 200);
  assert.match(await (await fetch(`${ops}/metrics`)).text(), /^socks4_operator_leader 1$/m);
  // Any Lease request would have been refused (403) and logged; none was, and no Lease exists.
  assert.doesNotMatch(cli.output(), /lease update failed/);
  assert.deepEqual(await leasesOutsideKubeSystem(), []);
  assert.equal(await cli.stop('SIGTERM'), 0);
  assert.doesNotMatch(cli.output(), /lease update failed/, 'not even to release one on the way out');
});

test('the same grant with election on: the Lease is refused, so the operator never leads nor publishes', async () => {
  const cli = startOperator('elector', []);
  const ops = await opsUrl(cli);
  await cli.waitForOutput(/HTTP 403[^\n]*"msg":"lease update failed"/);
  await waitFor("the elector's cache synced", async () =>
    (await fetch(`${ops}/readyz`)).status === 200 ? true : undefined,
  );
  assert.match(await (await fetch(`${ops}/metrics`)).text(), /^socks4_operator_leader 0$/m);
  assert.equal(await readPublished(redis, 'elector'), null);
  assert.deepEqual(await leasesOutsideKubeSystem(), []);
  assert.equal(await cli.stop('SIGTERM'), 0);
});
