// Fleet-mode figures, measured on real processes: a real redis-server and real proxy processes
// on loopback. Prints three things:
//   1. Redis commands per new session (INFO commandstats): round trips the proxy makes, and the
//      commands Redis runs for them (inside the scripts included).
//   2. push → enforcement latency over 100 pushes with 3 proxies (p50/p99/max).
//   3. handshake rate with Redis limits vs in-process limits, side by side in one run.
// Run: scripts/node bench/redis-figures.ts [--sessions 200] [--pushes 100] [--seconds 3] [--workers 16]
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadPolicyText } from '../src/policy/load.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../src/redis/connection.ts';
import { publishSnapshot } from '../src/rules/publish-snapshot.ts';
import { probe, socksConnect, startProxyProcess, startSink, type ProxyProcess } from '../test/helpers/fleet.ts';
import { startRedis } from '../test/helpers/redis.ts';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    pushes: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '16' },
  },
});
const SESSIONS = Number(values.sessions);
const PUSHES = Number(values.pushes);
const SECONDS = Number(values.seconds);
const WORKERS = Number(values.workers);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function policy(ports: { limited: number; toggle: number }, toggle: 'Allow' | 'Deny', generation: number): string {
  return `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: bench, namespace: bench}
spec:
  priority: ${100 + generation}
  rules:
    - name: toggle
      action: ${toggle}
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.toggle}"]}
    - name: limited
      action: Allow
      to: {cidrs: ["127.0.0.1/32"], ports: ["${ports.limited}"]}
      limits:
        connectionRate: {perSecond: 1000000, burst: 1000000, key: SourceIP}
        concurrentSessions: {max: 1000000, key: UserID}
        bandwidth: {bytesPerSecond: 100000000, key: Rule}
`;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function commandStats(client: ReturnType<typeof createRedisClient>): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const m of (await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    calls.set(m[1] as string, Number(m[2]));
  return calls;
}

/** Handshakes per second through `port`: WORKERS loops of connect → reply → close for SECONDS. */
async function handshakeRate(port: number, destPort: number): Promise<{ perSecond: number; refused: number }> {
  const deadline = performance.now() + SECONDS * 1000;
  let done = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      while (performance.now() < deadline) {
        const { code, socket } = await socksConnect(port, destPort, `user-${w}`);
        socket.destroy();
        if (code === 90) done += 1;
        else refused += 1;
      }
    }),
  );
  return { perSecond: done / SECONDS, refused };
}

const dir = mkdtempSync(path.join(tmpdir(), 'socks4-bench-'));
const redis = await startRedis();
const admin = createRedisClient({ url: redis.url });
const sinks = [await startSink(), await startSink()];
const ports = { limited: sinks[0]!.port, toggle: sinks[1]!.port };
const prefix = `bench-${randomUUID().slice(0, 8)}`;
const proxies: ProxyProcess[] = [];
try {
  if (!(await waitForReady(admin, 5000))) throw new Error('redis not ready');
  const publish = (toggle: 'Allow' | 'Deny', generation: number) =>
    publishSnapshot(admin, prefix, loadPolicyText(policy(ports, toggle, generation), 'bench').policies, {
      source: 'bench',
    });
  await publish('Allow', 0);
  const fleetArgs = [
    '--redis-url',
    redis.url,
    '--redis-prefix',
    prefix,
    '--lease-ttl',
    '60s',
    '--log-level',
    'info',
    '--drain-grace',
    '0',
  ];
  proxies.push(...(await Promise.all([0, 1, 2].map(() => startProxyProcess(fleetArgs)))));
  const [first] = proxies as [ProxyProcess];

  // 1. Redis commands per new session.
  await probe(first.port, ports.limited); // scripts loaded, connections warm
  await admin.config('RESETSTAT');
  for (let i = 0; i < SESSIONS; i++) {
    const { code, socket } = await socksConnect(first.port, ports.limited, `u${i % 10}`);
    if (code !== 90) throw new Error(`session ${i} refused (${code})`);
    socket.destroy();
  }
  await sleep(300); // the last releases (ZREM at close) land
  const stats = await commandStats(admin);
  for (const ours of ['config|resetstat', 'info']) stats.delete(ours);
  const roundTrips = (stats.get('evalsha') ?? 0) + (stats.get('eval') ?? 0) + (stats.get('zrem') ?? 0);
  const perCommand = [...stats]
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${name} ${(n / SESSIONS).toFixed(2)}`)
    .join(', ');
  const total = [...stats.values()].reduce((a, b) => a + b, 0);
  console.log(
    `\n1. Redis commands per new session (rate + concurrency + shared bandwidth limits, ${SESSIONS} sessions):`,
  );
  console.log(
    `   round trips: ${(roundTrips / SESSIONS).toFixed(2)} per session (admit script on the session's path, ZREM at close)`,
  );
  console.log(`   commands executed by Redis: ${(total / SESSIONS).toFixed(2)} per session: ${perCommand}`);

  // 2. push → enforcement by all three proxies.
  const timings: number[] = [];
  for (let i = 1; i <= PUSHES; i++) {
    const toggle = i % 2 === 1 ? 'Deny' : 'Allow';
    const expected = toggle === 'Deny' ? 91 : 90;
    const started = performance.now();
    await publish(toggle, i);
    // Each proxy is probed back to back until it answers with the new rules.
    await Promise.all(
      proxies.map(async (proxy) => {
        for (let round = 0; round < 10_000; round++) if ((await probe(proxy.port, ports.toggle)) === expected) return;
        throw new Error('push never enforced');
      }),
    );
    timings.push(performance.now() - started);
  }
  timings.sort((a, b) => a - b);
  console.log(
    `\n2. push → enforced by all 3 proxies, ${PUSHES} pushes (publish on a warm connection, then SOCKS probes):`,
  );
  console.log(
    `   p50 ${percentile(timings, 50).toFixed(1)} ms, p99 ${percentile(timings, 99).toFixed(1)} ms, max ${timings.at(-1)?.toFixed(1)} ms`,
  );

  // 3. Handshake rate, Redis limits vs in-process limits, same rules.
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, policy(ports, 'Allow', 0));
  for (const p of proxies.splice(1)) await p.kill('SIGKILL');
  const embedded = await startProxyProcess(['--policy-file', file, '--log-level', 'info', '--drain-grace', '0']);
  proxies.push(embedded);
  await publish('Allow', 0); // the same rules as the file
  await sleep(200);
  const withRedis = await handshakeRate(first.port, ports.limited);
  const inProcess = await handshakeRate(embedded.port, ports.limited);
  console.log(
    `\n3. handshakes per second (CONNECT through to a loopback sink, ${WORKERS} client loops, ${SECONDS} s each, 2 shared cores):`,
  );
  console.log(`   Redis limits:      ${withRedis.perSecond.toFixed(0)}/s (${withRedis.refused} refused)`);
  console.log(`   in-process limits: ${inProcess.perSecond.toFixed(0)}/s (${inProcess.refused} refused)`);
  console.log(`   ratio: ${(withRedis.perSecond / inProcess.perSecond).toFixed(2)}\n`);
} finally {
  await Promise.all(proxies.map((p) => p.kill('SIGKILL')));
  await Promise.all(sinks.map((s) => s.close()));
  await closeRedisClient(admin);
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
