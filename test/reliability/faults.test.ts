// Faults thrown at real processes while sessions are open: a proxy SIGTERMed with 100 active
// sessions, Redis slowed past the call timeout (DEBUG SLEEP), Redis SIGKILLed and restarted
// empty. Each case prints one JSON line with its figures (crashes, established sessions dropped,
// wrong decisions, time to recover) and asserts the ones that must be zero. The operator killed
// in the middle of changes is test/operator/failover.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runPolicyPush } from '../../src/cli/push-command.ts';
import { createRedisLimiter } from '../../src/limits/redis-limiter.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import {
  getOps,
  socksConnect,
  startProxyProcess,
  startProxyProcesses,
  startSink,
  type ProxyProcess,
} from '../helpers/fleet.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startEchoServer } from '../helpers/servers.ts';

const GRANTED = 90;
const REFUSED = 91;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const round = (ms: number): number => Math.round(ms);

/** An established session and when (performance.now()) it closed, if it did. */
interface Held {
  readonly socket: net.Socket;
  closedAt: number | null;
}

async function openSessions(proxyPort: number, destPort: number, count: number): Promise<Held[]> {
  const attempts = await Promise.all(Array.from({ length: count }, () => socksConnect(proxyPort, destPort)));
  assert.deepEqual(
    attempts.map((a) => a.code),
    attempts.map(() => GRANTED),
  );
  return attempts.map(({ socket }) => {
    const held: Held = { socket, closedAt: null };
    socket.once('close', () => (held.closedAt = performance.now()));
    return held;
  });
}

/** Sends a line through the session and resolves whether the same bytes came back in time. */
function echoes(held: Held, tag: string, timeoutMs = 3000): Promise<boolean> {
  const { socket } = held;
  if (held.closedAt !== null || socket.destroyed) return Promise.resolve(false);
  const payload = Buffer.from(`${tag}\n`);
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= payload.length) done(got.subarray(0, payload.length).equals(payload));
    };
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(payload);
  });
}

/** True once a PING to Redis on `port` goes unanswered for 100 ms (bounded: 50 tries). */
async function untilRedisStalls(port: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 100);
      socket.once('data', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.write('PING\r\n');
    });
    socket.destroy();
    if (!answered) return true;
  }
  return false;
}

/** How many of the sessions failed to echo in one round (all in parallel). */
async function echoRound(sessions: readonly Held[], tag: string): Promise<number> {
  const results = await Promise.all(sessions.map((held, i) => echoes(held, `${tag}-${i}`)));
  return results.filter((ok) => !ok).length;
}

/** One new CONNECT: its reply code (-1 closed without a reply, -2 connection refused) and time. */
async function decide(proxyPort: number, destPort: number): Promise<{ code: number; ms: number }> {
  const started = performance.now();
  try {
    const { code, socket } = await socksConnect(proxyPort, destPort);
    socket.destroy();
    return { code, ms: performance.now() - started };
  } catch {
    return { code: -2, ms: performance.now() - started };
  }
}

const exited = (p: ProxyProcess): boolean => p.child.exitCode !== null || p.child.signalCode !== null;

describe('a proxy SIGTERMed with 100 active sessions', () => {
  it('keeps every session echoing through the grace, refuses newcomers, is unready, closes the rest at the deadline and exits 0', async (t) => {
    const GRACE_MS = 3000;
    const dir = mkdtempSync(path.join(tmpdir(), 'socks4-faults-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(
      file,
      `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: drain, namespace: faults}
spec:
  rules:
    - {name: echo, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}}
`,
    );
    const proxy = await startProxyProcess(['--policy-file', file, '--drain-grace', `${GRACE_MS}ms`]);
    t.after(() => proxy.kill('SIGKILL'));
    const sessions = await openSessions(proxy.port, echo.port, 100);
    for (const held of sessions) t.after(() => held.socket.destroy());
    assert.equal(await echoRound(sessions, 'before'), 0);

    const exit = once(proxy.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const signalledAt = performance.now();
    proxy.child.kill('SIGTERM');
    let unreadyAfter = -1;
    for (let i = 0; i < 100 && unreadyAfter < 0; i++) {
      if ((await getOps(proxy.opsPort, '/readyz')).status === 503) unreadyAfter = performance.now() - signalledAt;
      else await sleep(10);
    }
    assert.ok(unreadyAfter >= 0, 'readiness fails while draining');
    const newcomers = await Promise.all(Array.from({ length: 5 }, () => decide(proxy.port, echo.port)));
    // Echo rounds through the grace period, stopping short of the deadline.
    let failedEchoes = 0;
    let rounds = 0;
    for (; rounds < 20 && performance.now() - signalledAt < GRACE_MS - 600; rounds++) {
      failedEchoes += await echoRound(sessions, `grace${rounds}`);
      await sleep(200);
    }
    const [code, signal] = await Promise.race([exit, sleep(GRACE_MS + 10_000).then(() => [null, null] as const)]);
    const drainMs = performance.now() - signalledAt;
    for (let i = 0; i < 100 && sessions.some((h) => h.closedAt === null); i++) await sleep(20);
    const closedAfter = sessions.map((h) => (h.closedAt ?? Infinity) - signalledAt);
    const figures = {
      case: 'proxy SIGTERM, 100 active sessions',
      crashes: code === 0 ? 0 : 1,
      exit: { code, signal },
      droppedInGrace: closedAfter.filter((ms) => ms < GRACE_MS).length,
      failedEchoes,
      echoRounds: rounds,
      wrongDecisions: newcomers.filter((n) => n.code === GRANTED).length,
      newcomerCodes: [...new Set(newcomers.map((n) => n.code))],
      unreadyAfterMs: round(unreadyAfter),
      closedAtDeadlineMs: [round(Math.min(...closedAfter)), round(Math.max(...closedAfter))],
      drainMs: round(drainMs),
    };
    console.log(JSON.stringify(figures));
    assert.equal(figures.crashes, 0, `exit ${code} ${signal}`);
    assert.equal(figures.droppedInGrace, 0);
    assert.equal(failedEchoes, 0);
    assert.ok(rounds >= 2, `only ${rounds} echo rounds fitted in the grace`);
    assert.equal(figures.wrongDecisions, 0, 'no new session is granted while draining');
    assert.ok(
      closedAfter.every((ms) => ms < GRACE_MS + 2000),
      `sessions closed at ${figures.closedAtDeadlineMs} ms`,
    );
    assert.ok(drainMs < GRACE_MS + 3000, `drained in ${drainMs} ms`);
  });
});

function fleetPolicy(ports: { echo: number; toggle: number; free: number }, toggle: 'Allow' | 'Deny'): string {
  return `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: faults, namespace: test}
spec:
  rules:
    - {name: toggle, action: ${toggle}, to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.toggle}"]}}
    - {name: free, action: Allow, to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.free}"]}}
    - name: limited
      action: Allow
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.echo}"]}
      limits: {concurrentSessions: {max: 100, key: Rule}}
`;
}

describe('a fleet of four proxies (two failing open, two closed) on a Redis that fails', () => {
  let redis: RedisServer;
  let dir: string;
  let proxies: { proxy: ProxyProcess; mode: 'open' | 'closed' }[] = [];
  const sessions: Held[] = [];
  let ports: { echo: number; toggle: number; free: number };
  const closers: (() => Promise<void>)[] = [];
  const prefix = `faults-${randomUUID().slice(0, 8)}`;

  const push = async (toggle: 'Allow' | 'Deny'): Promise<number> => {
    const file = path.join(dir, `${toggle}.yaml`);
    writeFileSync(file, fleetPolicy(ports, toggle));
    return runPolicyPush([file, '--redis-url', redis.url, '--redis-prefix', prefix, '--timeout', '1s'], {
      stdout: () => {},
      stderr: () => {},
    });
  };
  /** Every new session kind on every proxy, three each, in parallel: wrong decisions and the slowest. */
  const decideAll = async (
    redisUp: boolean,
  ): Promise<{ wrong: number; slowestMs: Record<string, number>; seen: string[] }> => {
    const kinds = [
      { name: 'limited', port: ports.echo, expect: (mode: string) => (redisUp || mode === 'open' ? GRANTED : REFUSED) },
      { name: 'free', port: ports.free, expect: () => GRANTED },
      { name: 'denied', port: ports.toggle, expect: () => REFUSED },
    ];
    const results = await Promise.all(
      proxies.flatMap(({ proxy, mode }) =>
        kinds.flatMap((kind) =>
          Array.from({ length: 3 }, async () => ({
            ...(await decide(proxy.port, kind.port)),
            expected: kind.expect(mode),
            key: `${kind.name}/${mode}`,
          })),
        ),
      ),
    );
    const wrong = results.filter((r) => r.code !== r.expected);
    const slowestMs: Record<string, number> = {};
    for (const r of results) slowestMs[r.key] = Math.max(slowestMs[r.key] ?? 0, round(r.ms));
    return { wrong: wrong.length, slowestMs, seen: wrong.map((r) => `${r.key}: ${r.code}≠${r.expected}`) };
  };
  const slowest = (ms: Record<string, number>): number => Math.max(...Object.values(ms));
  const crashes = (): number =>
    proxies.filter(({ proxy }) => exited(proxy) || /uncaught|unhandled/i.test(proxy.log())).length;
  const dropped = (): number => sessions.filter((h) => h.closedAt !== null).length;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'socks4-faults-'));
    redis = await startRedis(['--enable-debug-command', 'yes']);
    const echo = await startEchoServer();
    const [toggle, free] = [await startSink(), await startSink()];
    closers.push(
      () => echo.close(),
      () => toggle.close(),
      () => free.close(),
    );
    ports = { echo: echo.port, toggle: toggle.port, free: free.port };
    assert.equal(await push('Deny'), 0);
    const args = (mode: string): string[] => [
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--lease-ttl',
      '1s',
      '--drain-grace',
      '0',
      '--limits-fail-mode',
      mode,
    ];
    const modes = ['open', 'open', 'closed', 'closed'] as const;
    const started = await startProxyProcesses(modes.map(args));
    proxies = started.map((proxy, i) => ({ proxy, mode: modes[i]! }));
    for (const { proxy } of proxies) sessions.push(...(await openSessions(proxy.port, ports.echo, 5)));
  });

  after(async () => {
    for (const held of sessions) held.socket.destroy();
    await Promise.all(proxies.map(({ proxy }) => proxy.kill('SIGKILL')));
    for (const close of closers) await close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Redis slowed beyond the call timeout (DEBUG SLEEP 2): new sessions decided by the fail mode within ~1 s, established ones flow', async () => {
    assert.deepEqual((await decideAll(true)).seen, [], 'with Redis up, every proxy decides as the policy says');
    const sleeper = createRedisClient({ url: redis.url, commandTimeoutMs: 10_000 });
    assert.ok(await waitForReady(sleeper, 5000));
    try {
      const slept = sleeper.call('DEBUG', 'SLEEP', '2');
      const sleptAt = performance.now();
      // Not a fixed pause: on a slow machine the sleep may not have begun, and the decisions below
      // would meet a healthy Redis and prove nothing. Wait until a PING goes unanswered.
      assert.ok(await untilRedisStalls(redis.port), 'Redis never stopped answering');
      const [decisions, failedEchoes] = await Promise.all([decideAll(false), echoRound(sessions, 'slow')]);
      const decidedWithinMs = round(performance.now() - sleptAt);
      await slept;
      const wokeAt = performance.now();
      let recoveryMs = -1;
      for (let i = 0; i < 200 && recoveryMs < 0; i++) {
        const closed = proxies.filter((p) => p.mode === 'closed');
        const codes = await Promise.all(closed.map(({ proxy }) => decide(proxy.port, ports.echo)));
        if (codes.every((c) => c.code === GRANTED)) recoveryMs = performance.now() - wokeAt;
        else await sleep(25);
      }
      const figures = {
        case: 'Redis DEBUG SLEEP 2 (call timeout 500 ms)',
        crashes: crashes(),
        dropped: dropped(),
        failedEchoes,
        wrongDecisions: decisions.wrong,
        wrongSeen: decisions.seen,
        slowestDecisionMs: decisions.slowestMs,
        decidedWithinMs,
        recoveryMs: round(recoveryMs),
      };
      console.log(JSON.stringify(figures));
      assert.equal(figures.crashes, 0);
      assert.equal(figures.dropped, 0);
      assert.equal(failedEchoes, 0);
      assert.equal(figures.wrongDecisions, 0, `${decisions.seen}`);
      assert.ok(slowest(decisions.slowestMs) < 900, `slowest decisions ${JSON.stringify(decisions.slowestMs)} ms`);
      assert.ok(recoveryMs >= 0, 'closed proxies grant limited sessions again once Redis answers');
    } finally {
      await closeRedisClient(sleeper);
    }
  });

  it('Redis SIGKILLed under load and restarted empty: nothing dropped, fail modes hold, a push after the restart is enforced by all', async () => {
    assert.equal(await echoRound(sessions, 'pre-kill'), 0);
    await redis.kill('SIGKILL');
    const [decisions, firstEchoFailures] = await Promise.all([decideAll(false), echoRound(sessions, 'down0')]);
    let failedEchoes = firstEchoFailures;
    const unready = (await Promise.all(proxies.map(({ proxy }) => getOps(proxy.opsPort, '/readyz')))).filter(
      (r) => r.status !== 200,
    ).length;
    for (let i = 1; i < 4; i++) {
      await sleep(200);
      failedEchoes += await echoRound(sessions, `down${i}`);
    }
    await redis.restart();
    const restartedAt = performance.now();
    let pushes = 0;
    for (; pushes < 50 && (await push('Allow')) !== 0; pushes++) await sleep(50);
    let enforcedMs = -1;
    for (let i = 0; i < 400 && enforcedMs < 0; i++) {
      const codes = await Promise.all(proxies.map(({ proxy }) => decide(proxy.port, ports.toggle)));
      if (codes.every((c) => c.code === GRANTED)) enforcedMs = performance.now() - restartedAt;
      else await sleep(25);
    }
    failedEchoes += await echoRound(sessions, 'restarted');
    const closedLimited = await Promise.all(
      proxies.filter((p) => p.mode === 'closed').map(({ proxy }) => decide(proxy.port, ports.echo)),
    );
    const figures = {
      case: 'Redis SIGKILL + restart (empty)',
      crashes: crashes(),
      dropped: dropped(),
      failedEchoes,
      wrongDecisions: decisions.wrong,
      wrongSeen: decisions.seen,
      slowestDecisionMs: decisions.slowestMs,
      unreadyDuringOutage: unready,
      recoveryMs: round(enforcedMs),
    };
    console.log(JSON.stringify(figures));
    assert.equal(figures.crashes, 0);
    assert.equal(figures.dropped, 0);
    assert.equal(failedEchoes, 0);
    assert.equal(figures.wrongDecisions, 0, `${decisions.seen}`);
    assert.equal(unready, 0, 'the last good snapshot keeps every proxy ready');
    assert.ok(enforcedMs >= 0 && enforcedMs < 10_000, `push after restart enforced after ${enforcedMs} ms`);
    assert.deepEqual(
      closedLimited.map((c) => c.code),
      [GRANTED, GRANTED],
      'limits are decided by Redis again',
    );
  });
});

describe('the Redis limiter’s call deadline', () => {
  it('decides by the fail mode at callTimeoutMs even when the client would wait longer', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());
    const client = createRedisClient({ url: redis.url, commandTimeoutMs: 3000 });
    t.after(() => closeRedisClient(client));
    assert.ok(await waitForReady(client, 5000));
    const prefix = `deadline-${randomUUID().slice(0, 8)}`;
    const limiter = createRedisLimiter({ client, prefix, failMode: 'closed', callTimeoutMs: 200 });
    t.after(() => limiter.close());
    const request = {
      ruleId: 'r',
      limits: { concurrentSessions: { max: 5, key: 'Rule' as const } },
      sourceIp: '127.0.0.1',
      userId: 'u',
      sessionId: randomUUID(),
    };
    assert.equal((await limiter.admit(request)).ok, true);
    await redis.kill('SIGSTOP');
    t.after(() => redis.resume());
    const started = performance.now();
    const admission = await limiter.admit({ ...request, sessionId: randomUUID() });
    const ms = performance.now() - started;
    assert.deepEqual(admission, { ok: false, reason: 'LimiterUnavailable', retryAfterMs: 0 });
    assert.ok(ms >= 150 && ms < 1000, `decided after ${ms} ms`);
    assert.equal(
      limiter.stats().inFlight,
      1,
      'the call still counts against the cap until Redis or the client gives up',
    );
    redis.resume();
    // The late grant is handed back: only the first admission's slot stays taken.
    const key = limitKey(prefix, 'sessions', 'Rule', { ruleId: 'r', sourceIp: '', userId: '' });
    for (let i = 0; i < 100 && (limiter.stats().inFlight > 0 || (await client.zcard(key)) !== 1); i++) await sleep(20);
    assert.equal(limiter.stats().inFlight, 0);
    assert.equal(await client.zcard(key), 1);
  });
});
