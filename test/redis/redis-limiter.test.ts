// The Redis limiter against the shared limiter contract, on a real redis-server and on a real
// three-node Redis Cluster (where a script whose keys span slots fails with CROSSSLOT). Redis
// keeps its own time, so `advance` really waits.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { createRedisLimiter } from '../../src/limits/redis-limiter.ts';
import {
  closeRedisClient,
  createRedisClient,
  waitForReady,
  type RedisConnectionOptions,
} from '../../src/redis/connection.ts';
import { startRedis, startRedisCluster } from '../helpers/redis.ts';
import { runLimiterContract } from '../limits/limiter-contract.ts';

const [redis, cluster] = await Promise.all([startRedis(), startRedisCluster(3)]);
after(() => Promise.all([redis.stop(), cluster.stop()]));

function runAgainst(name: string, connection: RedisConnectionOptions): void {
  runLimiterContract(name, async (clock) => {
    const client = createRedisClient(connection);
    assert.ok(await waitForReady(client, 5000), `${name} not ready`);
    // Closed: a contract test must never pass through the fallback by accident.
    const limiter = createRedisLimiter({
      client,
      prefix: `c-${randomUUID().slice(0, 8)}`,
      failMode: 'closed',
      now: clock.now,
    });
    return {
      limiter,
      async advance(ms) {
        clock.advance(ms);
        await new Promise((resolve) => setTimeout(resolve, ms));
      },
      async cleanup() {
        await limiter.close();
        await closeRedisClient(client);
      },
    };
  });
}

runAgainst('redis', { url: redis.url });
const [seed, ...more] = cluster.nodes;
runAgainst('redis cluster', { url: `redis://${seed?.host}:${seed?.port}`, cluster: true, clusterNodes: more });
