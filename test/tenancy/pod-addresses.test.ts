// The pod address → namespace map: which addresses count (pure), and how it travels through a real
// redis-server from the operator's publisher to a proxy's directory, one field per change.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PodAddressIndex, podAddresses, type ObservedPod } from '../../operator/pod-addresses.ts';
import { PodAddressPublisher } from '../../operator/pod-publisher.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { podKeys, ruleKeys } from '../../src/rules/redis-keys.ts';
import { RedisPodDirectory } from '../../src/rules/pod-directory.ts';
import { createLogger } from '../../src/telemetry/logging.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

function pod(
  namespace: string,
  name: string,
  ips: string[],
  extra: { hostNetwork?: boolean; phase?: string } = {},
): ObservedPod {
  return {
    metadata: { namespace, name },
    spec: { ...(extra.hostNetwork === undefined ? {} : { hostNetwork: extra.hostNetwork }) },
    status: { phase: extra.phase ?? 'Running', podIPs: ips.map((ip) => ({ ip })) },
  };
}

describe('pod addresses (pure)', () => {
  it('counts status.podIPs (or podIP), one spelling each; not hostNetwork, not finished pods', () => {
    assert.deepEqual(podAddresses(pod('a', 'p', ['127.0.0.12', 'FD00::1'])), ['127.0.0.12', 'fd00::1']);
    assert.deepEqual(podAddresses({ metadata: { namespace: 'a', name: 'p' }, status: { podIP: '127.0.0.13' } }), [
      '127.0.0.13',
    ]);
    assert.deepEqual(podAddresses(pod('a', 'p', ['127.0.0.12'], { hostNetwork: true })), []);
    assert.deepEqual(podAddresses(pod('a', 'p', ['127.0.0.12'], { phase: 'Succeeded' })), []);
    assert.deepEqual(podAddresses(pod('a', 'p', ['127.0.0.12'], { phase: 'Failed' })), []);
    assert.deepEqual(podAddresses(pod('a', 'p', ['not an address'])), []);
  });

  it('follows pods as they come, move and go, and reports the addresses each change touched', () => {
    const index = new PodAddressIndex();
    assert.deepEqual(index.update('a/p', pod('a', 'p', ['127.0.0.12'])), ['127.0.0.12']);
    assert.equal(index.namespaceOf('127.0.0.12'), 'a');
    assert.deepEqual(index.update('a/p', pod('a', 'p', ['127.0.0.13'])).sort(), ['127.0.0.12', '127.0.0.13']);
    assert.equal(index.namespaceOf('127.0.0.12'), null);
    assert.equal(index.namespaceOf('127.0.0.13'), 'a');
    assert.deepEqual(index.update('a/p', null), ['127.0.0.13']);
    assert.equal(index.namespaceOf('127.0.0.13'), null);
    assert.deepEqual([...index.entries()], []);
  });

  it('an address claimed by pods of two namespaces belongs to neither until one lets go', () => {
    const index = new PodAddressIndex();
    index.update('a/old', pod('a', 'old', ['127.0.0.20']));
    index.update('b/new', pod('b', 'new', ['127.0.0.20']));
    assert.equal(index.namespaceOf('127.0.0.20'), null);
    assert.deepEqual([...index.entries()], []);
    index.update('a/old', null);
    assert.equal(index.namespaceOf('127.0.0.20'), 'b');
    // Two pods of one namespace sharing an address are still that namespace's.
    index.update('b/other', pod('b', 'other', ['127.0.0.20']));
    assert.equal(index.namespaceOf('127.0.0.20'), 'b');
  });
});

describe('pod addresses through Redis', () => {
  const PREFIX = 'pods-test';
  let server: RedisServer;
  let operatorSide: RedisClient;
  let proxySide: RedisClient;
  let observer: RedisClient;
  const logger = createLogger({ level: 'warn', destination: 2 });

  before(async () => {
    server = await startRedis();
    operatorSide = createRedisClient({ url: server.url });
    proxySide = createRedisClient({ url: server.url });
    observer = createRedisClient({ url: server.url });
    for (const c of [operatorSide, proxySide, observer]) assert.ok(await waitForReady(c, 5_000));
  });
  after(async () => {
    for (const c of [operatorSide, proxySide, observer]) if (c !== undefined) await closeRedisClient(c);
    await server?.stop();
  });

  async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 2_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!(await probe())) {
      if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('a term starts by replacing what Redis holds; each later change is one field and one notice naming it', async () => {
    const keys = podKeys(PREFIX);
    // Left behind by an earlier leader: a pod that is gone, and a stale namespace.
    await observer.hset(keys.addresses, { '127.0.0.99': 'gone', '127.0.0.12': 'stale' });
    const index = new PodAddressIndex();
    index.update('team-a/web', pod('team-a', 'web', ['127.0.0.12']));
    const directory = new RedisPodDirectory({ client: proxySide, prefix: PREFIX });
    directory.start();
    const publisher = new PodAddressPublisher({ redis: operatorSide, prefix: PREFIX, index, logger });
    try {
      publisher.start();
      await until(
        'the full sync',
        async () => directory.namespaceOf('127.0.0.12') === 'team-a' && directory.namespaceOf('127.0.0.99') === null,
      );
      assert.deepEqual(await observer.hgetall(keys.addresses), { '127.0.0.12': 'team-a' });

      // Watch what one pod change sends: exactly its address, never the rules channel.
      const listener = createRedisClient({ url: server.url });
      assert.ok(await waitForReady(listener, 5_000));
      const notices: string[] = [];
      listener.on('message', (channel: string, message: string) => notices.push(`${channel} ${message}`));
      await listener.subscribe(keys.channel, ruleKeys(PREFIX).channel);
      publisher.changed(index.update('team-b/db', pod('team-b', 'db', ['127.0.0.13'])));
      await until('the new pod', () => directory.namespaceOf('127.0.0.13') === 'team-b');
      // A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d.
      assert.equal(directory.namespaceOf('::ffff:127.0.0.13'), 'team-b');
      publisher.changed(index.update('team-a/web', null));
      await until('the deleted pod', () => directory.namespaceOf('127.0.0.12') === null);
      await until('both notices', () => notices.length === 2);
      assert.deepEqual(notices, [`${keys.channel} 127.0.0.13`, `${keys.channel} 127.0.0.12`]);
      await closeRedisClient(listener);
    } finally {
      await publisher.stop();
      await directory.stop();
    }
  });

  it('after Redis lost everything, the publisher writes the map again and proxies read it back', async () => {
    const index = new PodAddressIndex();
    index.update('team-c/api', pod('team-c', 'api', ['127.0.0.30']));
    const directory = new RedisPodDirectory({ client: proxySide, prefix: `${PREFIX}-restart` });
    directory.start();
    const publisher = new PodAddressPublisher({ redis: operatorSide, prefix: `${PREFIX}-restart`, index, logger });
    try {
      publisher.start();
      await until('the first sync', () => directory.namespaceOf('127.0.0.30') === 'team-c');
      await server.kill('SIGKILL');
      await server.restart(); // empty: no persistence
      // Until the publisher writes again, the proxy keeps the map it held.
      assert.equal(directory.namespaceOf('127.0.0.30'), 'team-c');
      await until(
        'the map rewritten',
        async () =>
          (await observer.hget(podKeys(`${PREFIX}-restart`).addresses, '127.0.0.30').catch(() => null)) === 'team-c',
        10_000,
      );
      publisher.changed(index.update('team-c/api', pod('team-c', 'api', ['127.0.0.31'])));
      await until(
        'the re-addressed pod',
        () => directory.namespaceOf('127.0.0.31') === 'team-c' && directory.namespaceOf('127.0.0.30') === null,
        10_000,
      );
    } finally {
      await publisher.stop();
      await directory.stop();
    }
  });
});
