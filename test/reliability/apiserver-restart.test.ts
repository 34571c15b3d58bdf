// Fault: the API server restarted under the operator. The operator must not exit, must leave the
// fleet's published rules alone while it cannot see the cluster, and must pick up changes made
// after the restart without being restarted itself.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RedisClient } from '../../src/redis/connection.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { operatorOpsPort, startOperatorReplica } from '../helpers/operator-replica.ts';
import type { CliProcess } from '../helpers/spawn.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  readPublished,
  startTestCluster,
  waitFor,
  waitForPolicyReady,
  type TestCluster,
} from '../operator/cluster.ts';

let cluster: TestCluster;
let redisServer: RedisServer;
let redis: RedisClient;
let operator: CliProcess | undefined;

before(async () => {
  [cluster, redisServer] = await Promise.all([startTestCluster(), startRedis()]);
  redis = await connectRedis(redisServer.url);
});

after(async () => {
  await operator?.stop('SIGKILL');
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([cluster?.stop(), redisServer?.stop()]);
});

const rule = (port: string): unknown => ({ rules: [{ name: 'r', action: 'Allow', to: { ports: [port] } }] });

test('API server SIGKILLed and restarted under the operator: no exit, rules kept, changes resume', async () => {
  const prefix = 'apiserver-restart';
  await cluster.createNamespace('faults');
  operator = startOperatorReplica({ cluster, redisUrl: redisServer.url, prefix, identity: 'only' });
  await operatorOpsPort(operator);
  await createPolicy(cluster.admin, 'faults', 'before', rule('1001'));
  await waitFor('the first policy published', async () =>
    (await readPublished(redis, prefix))?.specs.size === 1 ? true : undefined,
  );
  const versionBefore = (await readPublished(redis, prefix))?.version;

  const restartStarted = Date.now();
  await cluster.plane.restartApiServer();
  const downMs = Date.now() - restartStarted;
  // While the operator could not see the cluster, the fleet's rules stayed exactly as they were.
  assert.equal((await readPublished(redis, prefix))?.version, versionBefore);
  assert.equal(operator.child.exitCode, null, `the operator exited:\n${operator.output()}`);

  const back = Date.now();
  await createPolicy(cluster.admin, 'faults', 'after', rule('1002'));
  await waitFor(
    'both policies published after the restart',
    async () => ((await readPublished(redis, prefix))?.specs.size === 2 ? true : undefined),
    60_000,
  );
  const recoverMs = Date.now() - back;
  await waitForPolicyReady(cluster.admin, 'faults', 'after', 'True', 60_000);
  assert.equal(operator.child.exitCode, null);
  assert.doesNotMatch(operator.output(), /uncaught|unhandled/i);
  console.log(
    JSON.stringify({
      case: 'apiserver-restart',
      crashes: 0,
      apiServerDownMs: downMs,
      changeAfterRestartPublishedMs: recoverMs,
    }),
  );
});
