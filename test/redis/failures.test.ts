// Redis going away and coming back, for real: the server is SIGKILLed, SIGSTOPped (hung, the
// nastier case: connections stay up and nothing answers) and restarted empty on the same port.
// Nothing may crash, rules stay, limits follow the fail mode, and everything resumes by itself.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { createRedisLimiter, type FailMode } from '../../src/limits/redis-limiter.ts';
import type { Admission, AdmitRequest, RuleLimits } from '../../src/limits/types.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { publishSnapshot } from '../../src/rules/publish-snapshot.ts';
import { RedisRuleSource } from '../../src/rules/redis-source.ts';
import type { RuleSnapshot } from '../../src/rules/types.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { decide, policyYaml } from '../rules/rule-source-contract.ts';

type T = { after(fn: () => unknown): void };

async function server(t: T): Promise<RedisServer> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  return redis;
}

async function client(t: T, redis: RedisServer, commandTimeoutMs = 300): Promise<RedisClient> {
  const c = createRedisClient({ url: redis.url, commandTimeoutMs });
  t.after(() => closeRedisClient(c));
  assert.ok(await waitForReady(c, 5000));
  return c;
}

function collect(t: T, channel: string): unknown[] {
  const seen: unknown[] = [];
  const listener = (message: unknown): void => void seen.push(message);
  diagnostics.subscribe(channel, listener);
  t.after(() => diagnostics.unsubscribe(channel, listener));
  return seen;
}

const request = (ruleId: string, limits: RuleLimits): AdmitRequest => ({
  ruleId,
  limits,
  sourceIp: '192.0.2.1',
  userId: 'alice',
  sessionId: randomUUID(),
});
const oneSession: RuleLimits = { concurrentSessions: { max: 1, key: 'Rule' } };

async function push(c: RedisClient, prefix: string, yaml: string): Promise<void> {
  await publishSnapshot(c, prefix, loadPolicyText(yaml, 'test').policies);
}

async function timed(admission: Admission | Promise<Admission>): Promise<{ a: Admission; ms: number }> {
  const started = performance.now();
  const a = await admission;
  return { a, ms: performance.now() - started };
}

describe('limits when Redis fails', () => {
  for (const failMode of ['open', 'closed'] as const satisfies FailMode[]) {
    it(`Redis killed, fail ${failMode}: answers at once, ${failMode === 'open' ? 'within local limits' : 'LimiterUnavailable'}; resumes after restart`, async (t) => {
      const redis = await server(t);
      const c = await client(t, redis);
      const prefix = `f-${randomUUID().slice(0, 8)}`;
      const limiter = createRedisLimiter({ client: c, prefix, failMode, leaseTtlMs: 600 });
      t.after(() => limiter.close());
      const errors = collect(t, 'socks4-fleet:limiter:error');
      const ruleId = randomUUID();
      const held = await limiter.admit(request(ruleId, oneSession));
      assert.ok(held.ok);

      await redis.kill('SIGKILL');
      const first = await timed(limiter.admit(request(ruleId, oneSession)));
      assert.ok(first.ms < 100, `took ${first.ms} ms`);
      if (failMode === 'open') {
        assert.equal(first.a.ok, true, 'the local fallback has its own, empty budget');
        const second = await limiter.admit(request(ruleId, oneSession));
        assert.ok(!second.ok && second.reason === 'ConcurrencyLimited', 'the fallback enforces the rule locally');
        if (first.a.ok) first.a.lease.release();
      } else {
        assert.deepEqual(first.a, { ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
      }
      assert.ok(errors.length >= 1);

      await redis.restart();
      assert.ok(await waitForReady(c, 10_000), 'the client reconnects by itself');
      // The empty Redis learns about the session still held here at the next renewal.
      const key = limitKey(prefix, 'sessions', 'Rule', { ruleId, sourceIp: '', userId: '' });
      for (let i = 0; i < 50 && (await c.zcard(key)) === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await c.zcard(key), 1);
      const after = await limiter.admit(request(ruleId, oneSession));
      assert.ok(!after.ok && after.reason === 'ConcurrencyLimited', 'decided by Redis again');
      held.lease.release();
      for (let i = 0; i < 50 && (await c.zcard(key)) !== 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal((await limiter.admit(request(ruleId, oneSession))).ok, true);
    });
  }

  for (const failMode of ['closed', 'open'] as const satisfies FailMode[]) {
    it(`Redis hung, fail ${failMode}: every admission of a batch past its deadline is answered, with the reason; slots granted late go back`, async (t) => {
      const redis = await server(t);
      // ioredis's own timeout is longer than the limiter's: the limiter's deadline must decide.
      const c = await client(t, redis, 5000);
      const prefix = `b-${randomUUID().slice(0, 8)}`;
      const limiter = createRedisLimiter({ client: c, prefix, failMode, callTimeoutMs: 200 });
      t.after(() => limiter.close());
      const ruleId = randomUUID();
      const wide: RuleLimits = { concurrentSessions: { max: 100, key: 'Rule' } };
      const warm = await limiter.admit(request(ruleId, wide)); // the script is loaded on this connection
      assert.ok(warm.ok);
      warm.lease.release();
      const errors = collect(t, 'socks4-fleet:limiter:error');
      await redis.kill('SIGSTOP');
      t.after(() => redis.resume());
      const started = performance.now();
      // Asked in one turn: one batch, one script call.
      const answers = await Promise.all(Array.from({ length: 6 }, () => limiter.admit(request(ruleId, wide))));
      const waited = performance.now() - started;
      assert.ok(waited >= 190 && waited < 2000, `answered after ${waited} ms`);
      if (failMode === 'closed') {
        for (const a of answers) assert.deepEqual(a, { ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
      } else {
        // The local fallback admits them within its own (per pod) limits.
        for (const a of answers) assert.equal(a.ok, true);
        for (const a of answers) if (a.ok) a.lease.release();
      }
      assert.deepEqual(
        errors.map((e) => (e as { error: Error }).error.message),
        Array.from({ length: 6 }, () => 'Redis did not answer within 200 ms'),
      );
      assert.equal(limiter.stats().inFlight, 6, 'still waiting on Redis');
      // Redis wakes up and grants all six, to nobody: the pod hands every slot back.
      redis.resume();
      const key = limitKey(prefix, 'sessions', 'Rule', { ruleId, sourceIp: '', userId: '' });
      let held = -1;
      for (let i = 0; i < 100; i++) {
        held = await c.zcard(key);
        if (held === 0 && limiter.stats().inFlight === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(held, 0, 'late grants released');
      assert.equal(limiter.stats().inFlight, 0);
    });
  }

  it('Redis hung: times out quickly and never lets calls pile up', async (t) => {
    const redis = await server(t);
    const c = await client(t, redis, 300);
    const limiter = createRedisLimiter({ client: c, prefix: 'hung', failMode: 'closed', maxInFlight: 2 });
    t.after(() => limiter.close());
    const ruleId = randomUUID();
    assert.equal((await limiter.admit(request(ruleId, oneSession))).ok, true);
    await redis.kill('SIGSTOP');
    t.after(() => redis.resume());
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const { a } = await timed(limiter.admit(request(randomUUID(), oneSession)));
        return { a, at: performance.now() - started };
      }),
    );
    for (const { a } of results) assert.deepEqual(a, { ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
    const times = results.map((r) => r.at).sort((x, y) => x - y);
    // Three were refused without waiting (two already in flight), two after the command timeout.
    assert.ok((times[2] as number) < 50, `immediate refusals took ${times.slice(0, 3).join(', ')} ms`);
    assert.ok(
      (times[4] as number) >= 250 && (times[4] as number) < 2000,
      `timed-out calls took ${times.slice(3).join(', ')} ms`,
    );
    assert.equal(limiter.stats().inFlight, 0);
    redis.resume();
  });
});

describe('rules when Redis fails', () => {
  it('keeps the last snapshot through a Redis crash and restart, then follows notices again', async (t) => {
    const redis = await server(t);
    const publisher = await client(t, redis);
    const prefix = `r-${randomUUID().slice(0, 8)}`;
    await push(publisher, prefix, policyYaml(443));
    const sourceClient = await client(t, redis);
    const source = new RedisRuleSource({ client: sourceClient, prefix, refreshIntervalMs: 60_000 });
    const errors: Error[] = [];
    source.on('error', (error: Error) => errors.push(error));
    t.after(() => source.stop());
    await source.start();
    const held = source.current();
    assert.ok(held);

    await redis.kill('SIGKILL');
    await source.refresh();
    assert.ok(errors.length >= 1, 'the failed read is reported');
    assert.equal(source.current(), held);

    await redis.restart();
    assert.ok(await waitForReady(sourceClient, 10_000));
    assert.ok(await waitForReady(publisher, 10_000));
    await source.refresh();
    assert.equal(source.current(), held, 'an empty Redis (no pointer) does not unload the rules');
    // Wait until the source has subscribed again, then publish: the notice alone must do it.
    for (let i = 0; i < 100; i++) {
      const [, subscribers] = (await publisher.call('PUBSUB', 'NUMSUB', ruleKeys(prefix).channel)) as [string, number];
      if (subscribers > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const loaded = once(source, 'snapshot', { signal: AbortSignal.timeout(5000) });
    await push(publisher, prefix, policyYaml(443, { action: 'Deny' }));
    const [next] = (await loaded) as [RuleSnapshot];
    assert.equal(decide(next, 443), 'deny:proxies/office/rule-0');
  });

  it('picks up a pointer change without a notice on the slow timer', async (t) => {
    const redis = await server(t);
    const c = await client(t, redis);
    const prefix = `s-${randomUUID().slice(0, 8)}`;
    await push(c, prefix, policyYaml(443));
    const keys = ruleKeys(prefix);
    const first = (await c.get(keys.pointer)) as string;
    await push(c, prefix, policyYaml(443, { action: 'Deny' }));
    const second = (await c.get(keys.pointer)) as string;
    await c.set(keys.pointer, first);
    const source = new RedisRuleSource({ client: await client(t, redis), prefix, refreshIntervalMs: 100 });
    t.after(() => source.stop());
    await source.start();
    assert.equal(source.current()?.version, first);
    const loaded = once(source, 'snapshot', { signal: AbortSignal.timeout(5000) });
    await c.set(keys.pointer, second); // no PUBLISH
    const [snap] = (await loaded) as [RuleSnapshot];
    assert.equal(snap.version, second);
  });

  it('refuses a pointer to a missing snapshot or an unknown schema and keeps what it has', async (t) => {
    const redis = await server(t);
    const c = await client(t, redis);
    const prefix = `m-${randomUUID().slice(0, 8)}`;
    const keys = ruleKeys(prefix);
    await push(c, prefix, policyYaml(443));
    const source = new RedisRuleSource({ client: await client(t, redis), prefix, refreshIntervalMs: 60_000 });
    const errors: Error[] = [];
    source.on('error', (error: Error) => errors.push(error));
    t.after(() => source.stop());
    await source.start();
    const held = source.current();
    await c.set(keys.pointer, 'abcdefabcdef');
    await source.refresh();
    await c.set(keys.snapshot('abcdefabcdef'), JSON.stringify({ schema: 2, version: 'abcdefabcdef', policies: [] }));
    await source.refresh();
    await c.set(keys.pointer, 'not a version{');
    await source.refresh();
    assert.equal(source.current(), held);
    assert.equal(errors.length, 3);
    assert.match(errors[0]?.message ?? '', /missing/);
    assert.match(errors[1]?.message ?? '', /schema 2/);
    assert.match(errors[2]?.message ?? '', /not a snapshot version/);
  });
});
