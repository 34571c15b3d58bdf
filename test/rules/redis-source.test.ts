// The Redis source against the shared rule-source contract, on a real redis-server: rules are
// published with publishSnapshot (the `policy push` / operator path); broken rules are a
// snapshot that does not validate, written behind the publisher's back as a bug or an attacker
// would, with the pointer moved and the notice sent.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { loadPolicyText } from '../../src/policy/load.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { publishSnapshot } from '../../src/rules/publish-snapshot.ts';
import { RedisRuleSource } from '../../src/rules/redis-source.ts';
import { startRedis } from '../helpers/redis.ts';
import { runRuleSourceContract } from './rule-source-contract.ts';

const redis = await startRedis();
after(() => redis.stop());

runRuleSourceContract('redis', async (initial) => {
  const prefix = `contract-${randomUUID().slice(0, 8)}`;
  const keys = ruleKeys(prefix);
  const publisher = createRedisClient({ url: redis.url });
  assert.ok(await waitForReady(publisher, 5000));
  const publish = async (yaml: string): Promise<void> => {
    const { policies, issues } = loadPolicyText(yaml, 'test');
    assert.deepEqual(issues, []);
    await publishSnapshot(publisher, prefix, policies);
  };
  if (initial !== null) await publish(initial);
  const client = createRedisClient({ url: redis.url });
  const source = new RedisRuleSource({ client, prefix, refreshIntervalMs: 60_000 });
  const others: { source: RedisRuleSource; client: typeof client }[] = [];
  return {
    source,
    publish,
    async publishBroken() {
      const version = 'bad0bad0bad0';
      await publisher.set(
        keys.snapshot(version),
        JSON.stringify({ schema: 1, version, createdAt: '', policies: [{ kind: 'Socks4Policy' }] }),
      );
      await publisher.set(keys.pointer, version);
      await publisher.publish(keys.channel, version);
    },
    settle: () => source.refresh(),
    another: () => {
      const otherClient = createRedisClient({ url: redis.url });
      const other = new RedisRuleSource({ client: otherClient, prefix, refreshIntervalMs: 60_000 });
      others.push({ source: other, client: otherClient });
      return other;
    },
    async cleanup() {
      for (const other of others) {
        await other.source.stop();
        await closeRedisClient(other.client);
      }
      await source.stop();
      await closeRedisClient(client);
      await closeRedisClient(publisher);
    },
  };
});
