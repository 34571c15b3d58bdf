// Discovery of the fleet's own endpoints for the SSRF guard, against real redis-server processes:
// the configured URL, a Sentinel's master (never configured, only discovered) and every node of a
// Cluster seeded with one; plus the flag and the Kubernetes API from the environment.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { once } from 'node:events';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { parseIpv4 } from '../../src/policy/ip.ts';
import {
  configuredRedisSpecs,
  kubernetesApiSpec,
  parseEndpointSpec,
  resolveSpecs,
  startFleetGuard,
  type FleetGuard,
} from '../../src/server/fleet-guard.ts';
import { startRedis, startRedisCluster, startRedisSentinel } from '../helpers/redis.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Waits (bounded) until the guard holds ip:port as a Redis endpoint. */
async function waitForRedis(guard: FleetGuard, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (guard.endpoints.find(parseIpv4('127.0.0.1'), port)?.kind === 'redis') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`127.0.0.1:${port} never became a guarded Redis endpoint: ${JSON.stringify(guard.endpoints.list())}`);
}

describe('fleet guard: configuration', () => {
  it('reads --guard-endpoint as HOST or HOST:PORT and refuses anything else', () => {
    assert.deepEqual(parseEndpointSpec('10.0.0.9:6379', 'guard-endpoint', 'f'), {
      kind: 'guard-endpoint',
      host: '10.0.0.9',
      port: 6379,
      source: 'f',
    });
    assert.deepEqual(parseEndpointSpec('vault.internal', 'guard-endpoint', 'f').port, null);
    for (const bad of ['', 'a:b', 'h:0', 'h:70000', 'a:1:2'])
      assert.throws(() => parseEndpointSpec(bad, 'guard-endpoint', 'f'), /is not HOST or HOST:PORT/, bad);
  });

  it('takes the Kubernetes API from the service environment a pod gets', () => {
    assert.deepEqual(kubernetesApiSpec({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443' }), {
      kind: 'kubernetes-api',
      host: '10.96.0.1',
      port: 6443,
      source: 'KUBERNETES_SERVICE_HOST',
    });
    assert.equal(kubernetesApiSpec({}), null);
  });

  it('names the Redis endpoints of every connection mode, never the password', () => {
    const plain = configuredRedisSpecs({ url: 'redis://:s3cret@redis.fleet:6380/2' });
    assert.deepEqual(
      plain.map((s) => `${s.host}:${s.port} ${s.source}`),
      ['redis.fleet:6380 redis://redis.fleet:6380'],
    );
    const cluster = configuredRedisSpecs({
      url: 'rediss://a:7000',
      cluster: true,
      clusterNodes: [{ host: 'b', port: 7001 }],
    });
    assert.deepEqual(
      cluster.map((s) => `${s.host}:${s.port}`),
      ['a:7000', 'a:17000', 'b:7001', 'b:17001'],
    );
    const sentinel = configuredRedisSpecs({
      url: 'redis://ignored',
      sentinels: [{ host: 's1', port: 26379 }],
      sentinelName: 'm',
    });
    assert.deepEqual(
      sentinel.map((s) => `${s.host}:${s.port}`),
      ['s1:26379'],
    );
  });

  it('resolves names to every address and reports the ones that do not resolve', async () => {
    const lookup = async (host: string): Promise<string[]> => {
      if (host === 'redis.test') return ['10.0.0.9', '10.0.0.10'];
      throw new Error('ENOTFOUND');
    };
    const { endpoints, failed } = await resolveSpecs(
      [
        { kind: 'redis', host: 'redis.test', port: 6379, source: 'r' },
        { kind: 'guard-endpoint', host: '192.168.1.1', port: null, source: 'f' },
        { kind: 'guard-endpoint', host: 'missing.test', port: null, source: 'f' },
      ],
      lookup,
    );
    assert.deepEqual(
      endpoints.map((e) => e.ip).sort(),
      [parseIpv4('10.0.0.9'), parseIpv4('10.0.0.10'), parseIpv4('192.168.1.1')].sort(),
    );
    assert.deepEqual(
      failed.map((s) => s.host),
      ['missing.test'],
    );
  });
});

describe('fleet guard: following ioredis', () => {
  it('guards a standalone server once connected', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const client = createRedisClient({ url: redis.url });
    cleanups.push(() => closeRedisClient(client));
    const guard = startFleetGuard({ specs: [], redis: client });
    cleanups.push(() => guard.stop());
    await waitForRedis(guard, redis.port);
    assert.equal(guard.endpoints.find(parseIpv4('127.0.0.1'), redis.port + 1), null, 'only the port in use is guarded');
  });

  it('guards the master a Sentinel points to, which no flag named', async () => {
    const master = await startRedis();
    cleanups.push(() => master.stop());
    const sentinel = await startRedisSentinel(master.port, 'fleet');
    cleanups.push(() => sentinel.stop());
    const connection = {
      url: 'redis://127.0.0.1',
      sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
      sentinelName: 'fleet',
    };
    const client = createRedisClient(connection);
    cleanups.push(() => closeRedisClient(client));
    const guard = startFleetGuard({ specs: configuredRedisSpecs(connection), redis: client });
    cleanups.push(() => guard.stop());
    await guard.ready;
    assert.equal(guard.endpoints.find(parseIpv4('127.0.0.1'), sentinel.port)?.kind, 'redis', 'the sentinel itself');
    assert.ok(await waitForReady(client, 10_000));
    await waitForRedis(guard, master.port);
  });

  it('guards every node of a Cluster seeded with one', async () => {
    const cluster = await startRedisCluster(3);
    cleanups.push(() => cluster.stop());
    const seed = cluster.nodes[0]!;
    const client = createRedisClient({ url: `redis://${seed.host}:${seed.port}`, cluster: true });
    cleanups.push(() => closeRedisClient(client));
    const guard = startFleetGuard({ specs: [], redis: client });
    cleanups.push(() => guard.stop());
    if (client.status !== 'ready') await once(client, 'ready');
    for (const node of cluster.nodes) await waitForRedis(guard, node.port);
  });
});
