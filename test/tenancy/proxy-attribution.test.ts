// The proxy process attributing clients to namespaces, without a cluster: a real redis-server
// holding a Namespaced snapshot and a pod address map written by the operator's own publisher
// code, and clients bound to 127.0.0.x. The same snapshot published Shared (policy push) applies
// every policy to every client. tenancy-e2e.test.ts runs the whole chain on a real API server.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PodAddressIndex } from '../../operator/pod-addresses.ts';
import { PodAddressPublisher } from '../../operator/pod-publisher.ts';
import type { Socks4Policy } from '../../src/policy/types.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { publishSnapshot } from '../../src/rules/publish-snapshot.ts';
import { createLogger } from '../../src/telemetry/logging.ts';
import { startProxyProcess, startSink, type ProxyProcess } from '../helpers/fleet.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { socks4Request } from '../helpers/servers.ts';

const policies: Socks4Policy[] = [
  {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name: 'lockdown', namespace: 'team-b' },
    spec: { priority: 0, rules: [{ name: 'all', action: 'Deny' }] },
  },
  {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name: 'open', namespace: 'team-a' },
    spec: { rules: [{ name: 'sink', action: 'Allow', to: { cidrs: ['127.0.0.1/32'] } }] },
  },
];

let server: RedisServer;
let redis: RedisClient;
let sink: Awaited<ReturnType<typeof startSink>>;
before(async () => {
  [server, sink] = await Promise.all([startRedis(), startSink()]);
  redis = createRedisClient({ url: server.url });
  assert.ok(await waitForReady(redis, 5_000));
});
after(async () => {
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([server?.stop(), sink?.close()]);
});

async function connectFrom(proxy: ProxyProcess, source: string): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: source });
  socket.on('error', () => {});
  try {
    await once(socket, 'connect');
    socket.write(socks4Request(1, sink.port, '127.0.0.1', 'u'));
    const [chunk] = (await Promise.race([
      once(socket, 'data'),
      once(socket, 'close').then(() => [Buffer.alloc(0)]),
    ])) as [Buffer];
    return chunk.length >= 2 ? (chunk[1] as number) : -1;
  } finally {
    socket.destroy();
  }
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await probe())) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a proxy attributes clients through the pod address map', () => {
  const prefix = 'attribution';
  let proxy: ProxyProcess;
  let publisher: PodAddressPublisher;
  const index = new PodAddressIndex();
  before(async () => {
    await publishSnapshot(redis, prefix, policies, { source: 'test', tenancy: 'Namespaced' });
    index.update('team-a/a', {
      metadata: { namespace: 'team-a', name: 'a' },
      status: { podIPs: [{ ip: '127.0.0.21' }] },
    });
    index.update('team-b/b', {
      metadata: { namespace: 'team-b', name: 'b' },
      status: { podIPs: [{ ip: '127.0.0.22' }] },
    });
    publisher = new PodAddressPublisher({
      redis,
      prefix,
      index,
      logger: createLogger({ level: 'warn', destination: 2 }),
    });
    publisher.start();
    await publisher.settled();
    proxy = await startProxyProcess(['--redis-url', server.url, '--redis-prefix', prefix]);
  });
  after(async () => {
    await publisher?.stop();
    await proxy?.kill();
  });

  it("team-b's priority-0 Deny-all governs team-b's pods only; a client that is no pod gets neither namespace's rules", async () => {
    await until('team-a allowed', async () => (await connectFrom(proxy, '127.0.0.21')) === 90);
    assert.equal(await connectFrom(proxy, '127.0.0.22'), 91);
    assert.equal(await connectFrom(proxy, '127.0.0.23'), 91);
  });

  it('a pod that moves to team-a is allowed once the publisher wrote one field', async () => {
    publisher.changed(
      index.update('team-b/b', {
        metadata: { namespace: 'team-b', name: 'b' },
        status: { podIPs: [{ ip: '127.0.0.24' }] },
      }),
    );
    publisher.changed(
      index.update('team-a/c', {
        metadata: { namespace: 'team-a', name: 'c' },
        status: { podIPs: [{ ip: '127.0.0.22' }] },
      }),
    );
    await until('127.0.0.22 now team-a', async () => (await connectFrom(proxy, '127.0.0.22')) === 90);
    assert.equal(await connectFrom(proxy, '127.0.0.24'), 91);
  });
});

describe('the same policies pushed Shared (policy push, no pods) apply to every client', () => {
  it("team-b's Deny-all at priority 0 refuses everyone, as before tenancy", async () => {
    const prefix = 'shared';
    await publishSnapshot(redis, prefix, policies, { source: 'test' });
    const proxy = await startProxyProcess(['--redis-url', server.url, '--redis-prefix', prefix]);
    try {
      await until('a snapshot', async () => (await connectFrom(proxy, '127.0.0.21')) !== -1);
      for (const source of ['127.0.0.21', '127.0.0.22', '127.0.0.23'])
        assert.equal(await connectFrom(proxy, source), 91, source);
      // Refused by team-b's rule (not for want of a snapshot), also for team-a's pod address.
      // Each source's refusal names the rule (the probe above may have logged one more line).
      const refusedByRule = (source: string): boolean =>
        proxy
          .log()
          .split('\n')
          .some((l) => l.includes('"rule":"team-b/lockdown/all"') && l.includes(`"client":"${source}"`));
      await until('the refusals logged', async () => ['127.0.0.21', '127.0.0.22', '127.0.0.23'].every(refusedByRule));
    } finally {
      await proxy.kill();
    }
  });
});
