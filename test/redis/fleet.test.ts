// Three real proxy processes sharing one real redis-server: fleet-wide limits hold across them,
// a crashed pod's sessions free themselves within the lease time, a pushed policy reaches all of
// them, and a Redis crash and restart needs no proxy restart.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runPolicyPush } from '../../src/cli/push-command.ts';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../../src/redis/connection.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import {
  getOps,
  probe,
  runCli,
  socksConnect,
  startProxyProcess,
  startProxyProcesses,
  startSink,
  type ProxyProcess,
  type SocksAttempt,
} from '../helpers/fleet.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const LEASE_TTL_MS = 1000;
const GRANTED = 90;
const REFUSED = 91;

function fleetPolicy(ports: { hold: number; rate: number; toggle: number }, toggle: 'Allow' | 'Deny'): string {
  return `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: fleet, namespace: test}
spec:
  rules:
    - name: toggle
      action: ${toggle}
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.toggle}"]}
    - name: concurrent
      action: Allow
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.hold}"]}
      limits: {concurrentSessions: {max: 10, key: Rule}}
    - name: rate
      action: Allow
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.rate}"]}
      limits: {connectionRate: {perSecond: 20, burst: 20, key: Rule}}
`;
}

const count = (attempts: readonly SocksAttempt[], code: number): number =>
  attempts.filter((a) => a.code === code).length;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('a fleet of three proxies on one Redis', () => {
  let redis: RedisServer;
  let admin: RedisClient;
  let dir: string;
  let proxies: ProxyProcess[] = [];
  const sinks: { port: number; close(): Promise<void> }[] = [];
  const held: SocksAttempt[] = [];
  const prefix = `fleet-${randomUUID().slice(0, 8)}`;
  let ports: { hold: number; rate: number; toggle: number };

  const push = async (toggle: 'Allow' | 'Deny'): Promise<void> => {
    const file = path.join(dir, `${toggle}.yaml`);
    writeFileSync(file, fleetPolicy(ports, toggle));
    const code = await runPolicyPush([file, '--redis-url', redis.url, '--redis-prefix', prefix], {
      stdout: () => {},
      stderr: (s) => void process.stderr.write(s),
    });
    assert.equal(code, 0);
  };
  /** ms from now until every proxy answers `expected` for the toggle port (bounded). */
  const untilEnforced = async (expected: number): Promise<number> => {
    const started = performance.now();
    for (let round = 0; round < 500; round++) {
      const codes = await Promise.all(proxies.map((p) => probe(p.port, ports.toggle)));
      if (codes.every((code) => code === expected)) return performance.now() - started;
      await sleep(5);
    }
    throw new Error(`not enforced by all proxies after ${performance.now() - started} ms`);
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'socks4-fleet-'));
    redis = await startRedis();
    admin = createRedisClient({ url: redis.url });
    assert.ok(await waitForReady(admin, 5000));
    for (let i = 0; i < 3; i++) sinks.push(await startSink());
    ports = { hold: sinks[0]!.port, rate: sinks[1]!.port, toggle: sinks[2]!.port };
    // The first push goes through the real CLI entry point, as an operator would run it.
    const file = path.join(dir, 'initial.yaml');
    writeFileSync(file, fleetPolicy(ports, 'Allow'));
    const pushed = await runCli(['policy', 'push', file, '--redis-url', redis.url, '--redis-prefix', prefix]);
    assert.equal(pushed.code, 0, pushed.out);
    assert.match(pushed.out, /^published [0-9a-f]{12} \(1 policies, 3 rules\)/);
    const args = [
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--lease-ttl',
      `${LEASE_TTL_MS}ms`,
      '--drain-grace',
      '0',
    ];
    proxies = await startProxyProcesses([args, args, args]);
  });

  after(async () => {
    for (const attempt of held) attempt.socket.destroy();
    await Promise.all(proxies.map((p) => p.kill('SIGKILL')));
    await Promise.all(sinks.map((s) => s.close()));
    await closeRedisClient(admin);
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is ready on every proxy, each serving the pushed snapshot (version and age in /metrics)', async () => {
    const version = (await admin.get(ruleKeys(prefix).pointer)) as string;
    for (const proxy of proxies) {
      assert.equal((await getOps(proxy.opsPort, '/readyz')).status, 200);
      const metrics = (await getOps(proxy.opsPort, '/metrics')).body;
      assert.match(metrics, new RegExp(`socks4_snapshot_info\\{version="${version}"\\} 1`));
      assert.match(metrics, /socks4_snapshot_age_seconds \d/);
    }
  });

  it('grants exactly 10 concurrent sessions across the three', async () => {
    const attempts = await Promise.all(
      proxies.flatMap((p) => Array.from({ length: 10 }, () => socksConnect(p.port, ports.hold))),
    );
    for (const a of attempts) a.code === GRANTED ? held.push(a) : a.socket.destroy();
    assert.equal(count(attempts, GRANTED), 10);
    assert.equal(count(attempts, REFUSED), 20);
  });

  it('frees a SIGKILLed proxy’s sessions within the lease time', async () => {
    const holders = proxies.map((p) => held.filter((a) => a.socket.remotePort === p.port).length);
    const victim = holders.indexOf(Math.max(...holders));
    const freed = holders[victim] as number;
    assert.ok(freed > 0);
    await proxies[victim]!.kill('SIGKILL');
    const killedAt = performance.now();
    const survivors = proxies.filter((_, i) => i !== victim);
    assert.equal(await probe(survivors[0]!.port, ports.hold), REFUSED, 'a crash does not free slots at once');
    let regained = 0;
    let regainedAfter = 0;
    for (let round = 0; round < 100 && regained < freed; round++) {
      const a = await socksConnect(survivors[round % 2]!.port, ports.hold);
      if (a.code === GRANTED) {
        held.push(a);
        regained += 1;
        regainedAfter = performance.now() - killedAt;
      } else {
        a.socket.destroy();
        await sleep(50);
      }
    }
    assert.equal(regained, freed);
    assert.ok(
      regainedAfter <= LEASE_TTL_MS + 500,
      `freed ${freed} slots after ${Math.round(regainedAfter)} ms (lease ${LEASE_TTL_MS} ms)`,
    );
    assert.equal(await probe(survivors[1]!.port, ports.hold), REFUSED, 'and never more than 10');
    proxies = survivors;
  });

  it('admits 20±2 of a burst at 20/s burst 20, across the proxies', async (t) => {
    const started = performance.now();
    const attempts = await Promise.all(
      proxies.flatMap((p) => Array.from({ length: 30 }, () => socksConnect(p.port, ports.rate))),
    );
    const elapsed = performance.now() - started;
    for (const a of attempts) a.socket.destroy();
    const granted = count(attempts, GRANTED);
    t.diagnostic(`${granted} of ${attempts.length} granted in ${elapsed.toFixed(0)} ms`);
    // The burst, plus what 20/s refills while the attempts are being decided (on a busy machine
    // that can take longer than the 100 ms the ±2 allows).
    assert.ok(
      granted >= 20 && granted <= 20 + Math.max(2, Math.ceil((elapsed * 20) / 1000)),
      `granted ${granted} in ${elapsed} ms`,
    );
    assert.equal(granted + count(attempts, REFUSED), attempts.length);
  });

  it('enforces a pushed policy on every proxy within moments', async (t) => {
    await untilEnforced(GRANTED);
    const timings: number[] = [];
    for (const toggle of ['Deny', 'Allow', 'Deny'] as const) {
      const started = performance.now();
      await push(toggle);
      await untilEnforced(toggle === 'Deny' ? REFUSED : GRANTED);
      timings.push(performance.now() - started);
    }
    t.diagnostic(`push → enforced by all proxies: ${timings.map((ms) => `${ms.toFixed(1)} ms`).join(', ')}`);
    assert.ok(Math.max(...timings) < 2000, `${timings}`);
  });

  it('keeps serving through a Redis crash and follows pushes again after a restart', async () => {
    await redis.kill('SIGKILL');
    for (const proxy of proxies) {
      assert.equal(await probe(proxy.port, ports.toggle), REFUSED, 'the last snapshot still denies');
      assert.equal(await probe(proxy.port, ports.rate), GRANTED, 'limits fail open (local fallback)');
      assert.equal((await getOps(proxy.opsPort, '/readyz')).status, 200);
    }
    await redis.restart();
    assert.ok(await waitForReady(admin, 10_000));
    // The restarted Redis is empty. Within a renewal period the proxies re-add the 10 sessions
    // they still hold, so the fleet-wide limit is enforced again: wait for them in the rule's
    // session set (bounded by two lease times), not for a fixed time that a slow machine outlasts.
    const holdKey = limitKey(prefix, 'sessions', 'Rule', { ruleId: 'test/fleet/concurrent', sourceIp: '', userId: '' });
    const renewedBy = Date.now() + 2 * LEASE_TTL_MS + 1000;
    while (Date.now() < renewedBy && (await admin.zcard(holdKey)) < 10) await sleep(20);
    assert.equal(await admin.zcard(holdKey), 10, 'every held session re-added by its proxy');
    for (const proxy of proxies) assert.equal(await probe(proxy.port, ports.hold), REFUSED);
    // Notices resume once each proxy has resubscribed (bounded wait), without any restart.
    const channel = ruleKeys(prefix).channel;
    for (let i = 0; i < 100; i++) {
      const [, subscribers] = (await admin.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
      if (subscribers >= proxies.length) break;
      await sleep(50);
    }
    await push('Allow');
    assert.ok((await untilEnforced(GRANTED)) < 2000);
    for (const proxy of proxies) assert.doesNotMatch(proxy.log(), /uncaught|unhandled/i);
  });
});

describe('a proxy started on an empty Redis, failing closed', () => {
  it('stays unready until rules are pushed, then refuses limited sessions while Redis is down', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const sinks = [await startSink(), await startSink(), await startSink()];
    t.after(() => Promise.all(sinks.map((s) => s.close())));
    const ports = { hold: sinks[0]!.port, rate: sinks[1]!.port, toggle: sinks[2]!.port };
    const prefix = `closed-${randomUUID().slice(0, 8)}`;
    const proxy = await startProxyProcess([
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--limits-fail-mode',
      'closed',
      '--drain-grace',
      '0',
    ]);
    t.after(() => proxy.kill('SIGKILL'));
    assert.equal((await getOps(proxy.opsPort, '/readyz')).status, 503);
    assert.equal(await probe(proxy.port, ports.toggle), REFUSED, 'no snapshot, no service');

    const dir = mkdtempSync(path.join(tmpdir(), 'socks4-closed-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'p.yaml');
    writeFileSync(file, fleetPolicy(ports, 'Allow'));
    assert.equal(
      await runPolicyPush([file, '--redis-url', redis.url, '--redis-prefix', prefix], {
        stdout: () => {},
        stderr: () => {},
      }),
      0,
    );
    // Bounded by time, not by a count of quick polls: on a loaded machine the notice, the read
    // and the compile can take seconds.
    const readyBy = Date.now() + 15_000;
    while (Date.now() < readyBy && (await getOps(proxy.opsPort, '/readyz')).status !== 200) await sleep(20);
    assert.equal((await getOps(proxy.opsPort, '/readyz')).status, 200);
    assert.equal(await probe(proxy.port, ports.rate), GRANTED);

    await redis.kill('SIGKILL');
    assert.equal(await probe(proxy.port, ports.rate), REFUSED, 'fail closed: a limited rule is refused');
    assert.equal(await probe(proxy.port, ports.toggle), GRANTED, 'a rule without limits needs no Redis');
    // The session's log line arrives through a pipe: give it a moment (bounded).
    const loggedBy = Date.now() + 10_000;
    while (Date.now() < loggedBy && !/LimiterUnavailable/.test(proxy.log())) await sleep(20);
    assert.match(proxy.log(), /"reason":"LimiterUnavailable"/);
  });
});
