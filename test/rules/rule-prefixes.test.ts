// findRulePrefixes on a real redis-server: it names the prefixes whose rules pointer is where
// ruleKeys puts it (including prefixes with ':' in them), and nothing that only looks like one.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { findRulePrefixes } from '../../src/rules/rule-prefixes.ts';
import { startRedis } from '../helpers/redis.ts';

const redis = await startRedis();
const client = createRedisClient({ url: redis.url });
after(async () => {
  await closeRedisClient(client);
  await redis.stop();
});

test('finds every prefix holding a rules pointer, sorted, and ignores look-alikes', async () => {
  assert.ok(await waitForReady(client, 5000));
  assert.deepEqual(await findRulePrefixes(client), [], 'an empty Redis holds no rules');
  const version = 'a'.repeat(16);
  for (const prefix of ['socks4-fleet', 'release-b', 'team:a.b']) await client.set(ruleKeys(prefix).pointer, version);
  // Other keys of a fleet, and pointers whose hash tag names another prefix (not ours to name).
  await client.set(ruleKeys('only-snapshot').snapshot(version), '{}');
  await client.set('x:v1:{y:rules}:current', version);
  await client.set('z:v2:{z:rules}:current', version);
  assert.deepEqual(await findRulePrefixes(client), ['release-b', 'socks4-fleet', 'team:a.b']);
});
