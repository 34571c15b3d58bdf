// What the Redis limiter does beyond the shared contract: where its keys go, how many Redis
// commands a session costs, leases that outlive nobody, and bandwidth shared by several pods.
// Each "pod" is a limiter with its own connection to one real redis-server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { after, describe, it } from 'node:test';
import { createRedisLimiter, type RedisLimiter, type RedisLimiterOptions } from '../../src/limits/redis-limiter.ts';
import { RELEASE_DELAY_MS } from '../../src/limits/release-queue.ts';
import type { Admission, AdmitRequest, Lease, RuleLimits } from '../../src/limits/types.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { encodeKeyPart } from '../../src/limits/keys.ts';
import { hashTagOf } from '../../src/redis/keys.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import { startRedis } from '../helpers/redis.ts';

const redis = await startRedis();
after(() => redis.stop());

interface Pod {
  client: RedisClient;
  limiter: RedisLimiter;
}

async function openPod(
  t: { after(fn: () => unknown): void },
  prefix: string,
  over: Partial<RedisLimiterOptions> = {},
): Promise<Pod> {
  const client = createRedisClient({ url: redis.url });
  assert.ok(await waitForReady(client, 5000));
  const limiter = createRedisLimiter({ client, prefix, failMode: 'closed', ...over });
  t.after(async () => {
    await limiter.close();
    await closeRedisClient(client);
  });
  return { client, limiter };
}

const request = (ruleId: string, limits: RuleLimits, over: Partial<AdmitRequest> = {}): AdmitRequest => ({
  ruleId,
  limits,
  sourceIp: '192.0.2.1',
  userId: 'alice',
  sessionId: randomUUID(),
  ...over,
});

function leaseOf(a: Admission): Lease {
  assert.ok(a.ok, `expected admission, got ${JSON.stringify(a)}`);
  return a.lease;
}

async function scanKeys(client: RedisClient, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  for (let i = 0; i < 1000; i++) {
    const [next, batch] = await (client as import('ioredis').Redis).scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
    if (cursor === '0') break;
  }
  return keys;
}

/** Waits (bounded) until the limiter's batched releases have gone out to Redis. */
async function releasesSent(limiter: RedisLimiter): Promise<void> {
  for (let i = 0; i < 100 && limiter.stats().pendingReleases > 0; i++)
    await new Promise((resolve) => setTimeout(resolve, RELEASE_DELAY_MS));
  assert.equal(limiter.stats().pendingReleases, 0, 'releases still pending after 100 windows');
}

/** Calls per command name since the last CONFIG RESETSTAT (commands inside scripts included). */
async function commandCalls(client: RedisClient): Promise<Map<string, number>> {
  const info = await client.info('commandstats');
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]));
  return calls;
}

/**
 * commandCalls once `arrived` holds (a bounded poll): a release the pod has written can still be on
 * its way to Redis when the test's own connection asks, so an exact count waits for it first.
 */
async function commandCallsOnce(
  client: RedisClient,
  arrived: (calls: Map<string, number>) => boolean,
): Promise<Map<string, number>> {
  let calls = await commandCalls(client);
  for (let i = 0; i < 100 && !arrived(calls); i++) {
    await new Promise((resolve) => setTimeout(resolve, RELEASE_DELAY_MS));
    calls = await commandCalls(client);
  }
  return calls;
}

describe('redis limiter', () => {
  it('keeps every hostile USERID inside its own key, all in the rule’s slot', async (t) => {
    const prefix = `k-${randomUUID().slice(0, 8)}`;
    const { client, limiter } = await openPod(t, prefix);
    const ruleId = 'proxies/office/web{x}:*';
    const userIds = [
      '*',
      '{',
      '}',
      '{alice}',
      ':',
      'a:b',
      '\n',
      'a\r\nb',
      ' ',
      '%7B',
      'é',
      'x'.repeat(255),
      'alice',
      '',
    ];
    const limits: RuleLimits = {
      concurrentSessions: { max: 1, key: 'UserID' },
      connectionRate: { perSecond: 10, burst: 5, key: 'UserID' },
    };
    for (const userId of userIds) leaseOf(await limiter.admit(request(ruleId, limits, { userId })));
    // Each USERID has its own budget: a second session of any of them is refused.
    for (const userId of userIds) assert.equal((await limiter.admit(request(ruleId, limits, { userId }))).ok, false);
    const keys = await scanKeys(client, `${prefix}:*`);
    assert.equal(keys.length, userIds.length * 2, 'one rate key and one sessions key per USERID');
    const tag = `${prefix}:${encodeKeyPart(ruleId)}`;
    const decoded = new Set<string>();
    for (const key of keys) {
      assert.ok(key.startsWith(`${prefix}:v1:{`), key);
      assert.equal(hashTagOf(key), tag, `slot of ${JSON.stringify(key)}`);
      assert.doesNotMatch(key, /[\r\n ]/, 'no raw whitespace');
      const match = /:(rate|sessions):user:([^:]*)$/.exec(key);
      assert.ok(match, key);
      decoded.add(`${match[1]}|${decodeURIComponent(match[2] as string)}`);
    }
    for (const userId of userIds) {
      assert.ok(decoded.has(`rate|${userId}`) && decoded.has(`sessions|${userId}`), JSON.stringify(userId));
      const key = keys.find((k) => k.endsWith(`:sessions:user:${encodeKeyPart(userId)}`)) as string;
      assert.equal(await client.zcard(key), 1);
    }
  });

  it('costs one Redis call per new session and at most one ZREM per key and release window; a known-over key costs none', async (t) => {
    const { client, limiter } = await openPod(t, `c-${randomUUID().slice(0, 8)}`, { leaseTtlMs: 60_000 });
    const ruleId = randomUUID();
    const limits: RuleLimits = {
      connectionRate: { perSecond: 0.5, burst: 20, key: 'SourceIP' },
      concurrentSessions: { max: 100, key: 'UserID' },
      bandwidth: { bytesPerSecond: 1_000_000, key: 'Rule' },
    };
    leaseOf(await limiter.admit(request(ruleId, limits))).release(); // scripts loaded on this connection
    await releasesSent(limiter); // that release goes out after its window
    await client.config('RESETSTAT');
    const sessions = 10;
    const leases: Lease[] = [];
    for (let i = 0; i < sessions; i++)
      leases.push(leaseOf(await limiter.admit(request(ruleId, limits, { userId: `u${i}` }))));
    for (const lease of leases) lease.release();
    // Burst 20 is spent by 9 more sessions; then one refusal asks Redis, later ones do not.
    for (let i = 0; i < 15; i++) await limiter.admit(request(ruleId, limits));
    await releasesSent(limiter);
    const calls = await commandCallsOnce(client, (c) => (c.get('zrem') ?? 0) >= sessions);
    const scripts = (calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0);
    assert.equal(calls.get('zrem'), sessions);
    assert.equal(scripts, sessions + 10, `script calls: ${JSON.stringify([...calls])}`);
    assert.ok(limiter.stats().cachedRefusals >= 1);
  });

  it('sends the admissions of a turn as one script call, whose keys all lie in their rule’s slot', async (t) => {
    const { client, limiter } = await openPod(t, `t-${randomUUID().slice(0, 8)}`);
    const ruleId = randomUUID();
    const limits: RuleLimits = {
      connectionRate: { perSecond: 100, burst: 100, key: 'SourceIP' },
      concurrentSessions: { max: 100, key: 'UserID' },
    };
    leaseOf(await limiter.admit(request(ruleId, limits))).release(); // scripts loaded on this connection
    await releasesSent(limiter);
    await client.config('RESETSTAT');
    const sessions = 12;
    const answers = await Promise.all(
      Array.from({ length: sessions }, (_, i) => limiter.admit(request(ruleId, limits, { userId: `u${i % 3}` }))),
    );
    for (const a of answers) leaseOf(a);
    const calls = await commandCalls(client);
    assert.equal((calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0), 1, JSON.stringify([...calls]));
    // One read and one write of the source's rate key, one count per USERID's sessions key.
    assert.equal(calls.get('get'), 1);
    assert.equal(calls.get('set'), 1);
    assert.equal(calls.get('zcard'), 3);
    assert.equal(calls.get('zadd'), sessions);
    assert.equal(calls.get('pexpire'), 3);
    for (const a of answers) if (a.ok) a.lease.release();
  });

  it('fails only the session whose key is broken, not those batched with it', async (t) => {
    const prefix = `w-${randomUUID().slice(0, 8)}`;
    const { client, limiter } = await openPod(t, prefix);
    const errors: unknown[] = [];
    const listener = (message: unknown): void => void errors.push(message);
    diagnostics.subscribe('socks4-fleet:limiter:error', listener);
    t.after(() => diagnostics.unsubscribe('socks4-fleet:limiter:error', listener));
    const ruleId = randomUUID();
    const limits: RuleLimits = { concurrentSessions: { max: 10, key: 'UserID' } };
    // Someone wrote a plain string where mallory's lease set belongs.
    await client.set(limitKey(prefix, 'sessions', 'UserID', { ruleId, sourceIp: '', userId: 'mallory' }), 'x');
    const together = await Promise.all(
      ['alice', 'mallory', 'bob'].map((userId) => limiter.admit(request(ruleId, limits, { userId }))),
    );
    assert.deepEqual(
      together.map((a) => (a.ok ? 'ok' : a.reason)),
      ['ok', 'LimiterUnavailable', 'ok'],
    );
    assert.equal(errors.length, 1);
    assert.match((errors[0] as { error: Error }).error.message, /WRONGTYPE/);
    for (const a of together) if (a.ok) a.lease.release();
  });

  it('carries a release into the next admission of its key, and batches the rest into one ZREM per key', async (t) => {
    const prefix = `r-${randomUUID().slice(0, 8)}`;
    const { client, limiter } = await openPod(t, prefix);
    const ruleId = randomUUID();
    const limits: RuleLimits = { concurrentSessions: { max: 1, key: 'Rule' } };
    const first = leaseOf(await limiter.admit(request(ruleId, limits)));
    // MONITOR tells the pod's own commands from those its scripts run (source "lua").
    const monitor = await (client as import('ioredis').Redis).monitor();
    t.after(() => monitor.disconnect());
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) =>
      seen.push(`${source === 'lua' ? 'lua' : 'pod'} ${args[0]?.toLowerCase()}`),
    );
    // The only slot is given back and taken again at once; the release rides in the script.
    first.release();
    const second = leaseOf(await limiter.admit(request(ruleId, limits)));
    assert.equal(limiter.stats().pendingReleases, 0);
    // Three sessions of another key closed together: one ZREM for all three.
    const other = randomUUID();
    const wide: RuleLimits = { concurrentSessions: { max: 10, key: 'Rule' } };
    const three = [
      leaseOf(await limiter.admit(request(other, wide))),
      leaseOf(await limiter.admit(request(other, wide))),
      leaseOf(await limiter.admit(request(other, wide))),
    ];
    for (const lease of three) lease.release();
    assert.equal(limiter.stats().pendingReleases, 3);
    await releasesSent(limiter);
    // The pod's ZREM goes on its own connection: wait (bounded) until MONITOR has seen it.
    for (let i = 0; i < 100 && !seen.includes('pod zrem'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(
      seen.filter((s) => s.endsWith('zrem')),
      ['lua zrem', 'pod zrem'],
      seen.join(', '),
    );
    assert.equal(
      await client.zcard(limitKey(prefix, 'sessions', 'Rule', { ruleId: other, sourceIp: '', userId: '' })),
      0,
      'all three released',
    );
    second.release();
  });

  it('holds a live pod’s leases past the lease time, and frees a dead pod’s within it', async (t) => {
    const prefix = `l-${randomUUID().slice(0, 8)}`;
    const ttl = 600;
    const alive = await openPod(t, prefix, { leaseTtlMs: ttl });
    const doomed = await openPod(t, prefix, { leaseTtlMs: ttl });
    const other = await openPod(t, prefix, { leaseTtlMs: ttl });
    const ruleId = randomUUID();
    const limits: RuleLimits = { concurrentSessions: { max: 2, key: 'Rule' } };
    leaseOf(await alive.limiter.admit(request(ruleId, limits)));
    leaseOf(await doomed.limiter.admit(request(ruleId, limits)));
    assert.equal((await other.limiter.admit(request(ruleId, limits))).ok, false);
    // The doomed pod dies: its connection drops and nothing is released or renewed again.
    doomed.client.disconnect();
    await doomed.limiter.close();
    const died = Date.now();
    let freedAfter = -1;
    for (let i = 0; i < 100 && freedAfter < 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const a = await other.limiter.admit(request(ruleId, limits));
      if (a.ok) freedAfter = Date.now() - died;
    }
    assert.ok(freedAfter > 0 && freedAfter <= ttl + 300, `freed after ${freedAfter} ms (lease ${ttl} ms)`);
    // The live pod's lease (now 2 lease times old) still counts: the rule is full again.
    await new Promise((resolve) => setTimeout(resolve, ttl));
    assert.equal((await other.limiter.admit(request(ruleId, limits))).ok, false);
  });

  it('shares a bandwidth budget across pods without Redis on the per-chunk path', async (t) => {
    const prefix = `b-${randomUUID().slice(0, 8)}`;
    const pods = [await openPod(t, prefix), await openPod(t, prefix)];
    const ruleId = randomUUID();
    const rate = 20_000;
    const limits: RuleLimits = { bandwidth: { bytesPerSecond: rate, key: 'Rule' } };
    const gates = await Promise.all(
      pods.map(async (pod) => leaseOf(await pod.limiter.admit(request(ruleId, limits))).bandwidth),
    );
    await pods[0]?.client.config('RESETSTAT');
    const durationMs = 1500;
    const start = Date.now();
    let sent = 0;
    let chunks = 0;
    // Two relays per pod, 1 kB chunks, each waiting the delay its gate asks for.
    await Promise.all(
      gates.flatMap((gate) =>
        [0, 1].map(async () => {
          assert.ok(gate);
          while (Date.now() - start < durationMs) {
            const delay = gate.take(1000);
            sent += 1000;
            chunks += 1;
            if (delay > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(delay, durationMs)));
          }
        }),
      ),
    );
    const elapsed = Date.now() - start;
    // The fleet may spend the rate plus one second's burst (granted to the first pod), plus the
    // debt relays run up before grants catch up (a couple of chunks each); it must not starve.
    const ceiling = (rate * elapsed) / 1000 + rate + 4 * 2 * 1000;
    assert.ok(sent <= ceiling, `sent ${sent} B in ${elapsed} ms, ceiling ${ceiling}`);
    assert.ok(sent >= ((rate * elapsed) / 1000) * 0.6, `sent only ${sent} B in ${elapsed} ms`);
    const calls = await commandCalls(pods[0]!.client);
    const grants = (calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0);
    assert.ok(grants < chunks / 2, `${grants} grant calls for ${chunks} chunks`);
  });
});
