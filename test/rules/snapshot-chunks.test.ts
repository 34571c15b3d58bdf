// Rules fan-out by chunks: a push makes pods fetch only the chunks that changed, chunks are checked
// against their digests, and a version without a manifest (an older publisher) still loads from
// the whole document. Pure building/parsing first, then a real redis-server with the real
// publisher and rule source; MONITOR shows what a pod fetched.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import type { Socks4Policy } from '../../src/policy/types.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { DEFAULT_OLD_SNAPSHOT_TTL_MS, publishSnapshot } from '../../src/rules/publish-snapshot.ts';
import {
  assemblePolicies,
  bucketCount,
  buildSnapshotChunks,
  parseChunk,
  parseManifest,
} from '../../src/rules/snapshot-chunks.ts';
import { buildSnapshotDocument, SnapshotInvalidError } from '../../src/rules/snapshot-document.ts';
import { RedisRuleSource } from '../../src/rules/redis-source.ts';
import { startRedis } from '../helpers/redis.ts';

function tenants(count: number, changed = -1): Socks4Policy[] {
  return Array.from(
    { length: count },
    (_, t) =>
      ({
        apiVersion: 'socks4-fleet.io/v1alpha1',
        kind: 'Socks4Policy',
        metadata: { name: `team-${t}`, namespace: 'ns' },
        spec: {
          priority: t === changed ? 5 : 1000,
          rules: [{ name: 'web', action: 'Allow', to: { ports: [String(1000 + t)] } }],
        },
      }) as Socks4Policy,
  );
}

describe('snapshot chunks (pure)', () => {
  it('reassembles exactly the document’s policies, and one changed policy changes one chunk', () => {
    const { document } = buildSnapshotDocument(tenants(500));
    const before = buildSnapshotChunks(document);
    assert.equal(before.manifest.chunks.length, bucketCount(500));
    const parsed = new Map([...before.chunks].map(([id, json]) => [id, parseChunk(id, json)]));
    assert.deepEqual(assemblePolicies(parseManifest(before.manifestJson, document.version), parsed), document.policies);
    const after = buildSnapshotChunks(buildSnapshotDocument(tenants(500, 7)).document);
    const changed = after.manifest.chunks.filter((id) => !before.chunks.has(id));
    assert.equal(changed.length, 1);
  });

  it('refuses a chunk that does not match its digest, a foreign manifest and a policy twice', () => {
    const { document } = buildSnapshotDocument(tenants(40));
    const { manifest, manifestJson, chunks } = buildSnapshotChunks(document);
    const [id, json] = [...chunks][0]!;
    assert.throws(
      () => parseChunk(id, json.replace('1000', '1001')),
      (e: unknown) => e instanceof SnapshotInvalidError && /does not match its digest/.test(e.message),
    );
    assert.throws(() => parseManifest(manifestJson, 'abcdefabcdef'), /holds version/);
    assert.throws(
      () => parseManifest(manifestJson.replace('"manifestSchema":1', '"manifestSchema":2'), document.version),
      /schema 2; this pod reads 1/,
    );
    const twice = { ...manifest, chunks: [id, id] };
    assert.throws(() => assemblePolicies(twice, new Map([[id, parseChunk(id, json)]])), /twice/);
  });
});

describe('snapshot chunks through Redis', async () => {
  const redis = await startRedis();
  after(() => redis.stop());

  async function setup(t: { after(fn: () => unknown): void }) {
    const prefix = `chunks-${randomUUID().slice(0, 8)}`;
    const keys = ruleKeys(prefix);
    const admin = createRedisClient({ url: redis.url });
    const client = createRedisClient({ url: redis.url });
    assert.ok(await waitForReady(admin, 5000));
    const source = new RedisRuleSource({ client, prefix, refreshIntervalMs: 60_000 });
    t.after(async () => {
      await source.stop();
      await closeRedisClient(client);
      await closeRedisClient(admin);
    });
    return { prefix, keys, admin, client, source };
  }

  it('a push fetches only the changed chunk; chunks only the old version used expire with it', async (t) => {
    const { prefix, keys, admin, source } = await setup(t);
    const first = await publishSnapshot(admin, prefix, tenants(300));
    await source.start();
    assert.equal(source.current()?.version, first.version);
    const monitor = await (admin as import('ioredis').Redis).monitor();
    t.after(() => monitor.disconnect());
    const fetched: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (
        args[0]?.toLowerCase() === 'mget' ||
        (args[0]?.toLowerCase() === 'get' && /:(snapshot|chunk):/.test(args[1] ?? ''))
      )
        fetched.push(args);
    });
    const second = await publishSnapshot(admin, prefix, tenants(300, 11));
    await source.refresh();
    assert.equal(source.current()?.version, second.version);
    assert.equal(source.current()?.policyCount, 300);
    await admin.ping();
    for (let i = 0; i < 100 && fetched.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(
      fetched.map((args) => args.length),
      [2],
      `one MGET of one chunk, no document: ${JSON.stringify(fetched)}`,
    );
    const [m1, m2] = await Promise.all(
      [first, second].map(async (p) => parseManifest((await admin.get(keys.manifest(p.version)))!, p.version)),
    );
    const gone = m1!.chunks.filter((id) => !m2!.chunks.includes(id));
    assert.equal(gone.length, 1);
    const ttl = await admin.pttl(keys.chunk(gone[0]!));
    assert.ok(ttl > 0 && ttl <= DEFAULT_OLD_SNAPSHOT_TTL_MS, `old chunk ttl ${ttl}`);
    for (const id of m2!.chunks) assert.equal(await admin.pttl(keys.chunk(id)), -1, 'a chunk in use never expires');
  });

  it('loads a version that has no manifest from the whole document, and keeps its rules on a corrupt chunk', async (t) => {
    const { prefix, keys, admin, source } = await setup(t);
    const old = await publishSnapshot(admin, prefix, tenants(50));
    await admin.del(keys.manifest(old.version)); // as an older publisher leaves it
    await source.start();
    assert.equal(source.current()?.version, old.version);
    const errors: Error[] = [];
    source.on('error', (error: Error) => errors.push(error));
    const next = await publishSnapshot(admin, prefix, tenants(50, 3));
    const manifest = parseManifest((await admin.get(keys.manifest(next.version)))!, next.version);
    await admin.set(keys.chunk(manifest.chunks[0]!), '[]');
    await source.refresh();
    assert.equal(source.current()?.version, old.version, 'the rules in force stay');
    assert.match(errors[0]?.message ?? '', /does not match its digest/);
  });
});
