// Redis's side of admitting sessions: Redis CPU per admitted session and sessions/s, on one
// standalone redis-server and on real Redis Clusters of K masters. The load is the Redis limiter
// itself (src/limits/redis-limiter.ts), driven without sockets or a proxy so that the Node side
// (two shared cores) stays out of Redis's figures: P simulated pods (one limiter and one Redis
// client each, as in the fleet) run C sessions at a time, each admit → release, with the limits
// of bench/policy.yaml's matching rule (connection rate by source IP, concurrent sessions by
// USERID) spread over R rules (the key layout puts one rule's keys in one slot) and U USERIDs.
// Redis's CPU is `INFO cpu` (used_cpu_user + used_cpu_sys) of every node over the window.
//
//   scripts/node bench/admission.ts [--shards 0,1,2,3] [--pods 4] [--concurrency 8] [--seconds 4]
//                                   [--rules 64] [--users 4] [--baseline DIR] [--json]
// --shards: 0 is a standalone server, K ≥ 1 a cluster of K masters. --baseline DIR: also run the
// limiter of another checkout (e.g. `git archive main | tar -x -C DIR`) in the same run, alternated.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { closeRedisClient, createRedisClient, waitForReady, type RedisClient } from '../src/redis/connection.ts';
import type { AdmitRequest, Limiter } from '../src/limits/types.ts';
import { startRedis, startRedisCluster } from '../test/helpers/redis.ts';
import { benchRoot, repoRoot } from './lib/paths.ts';

type CreateLimiter = (opts: {
  client: RedisClient;
  prefix: string;
  podId: string;
}) => Limiter & { close(): Promise<void> };

export interface AdmissionRun {
  variant: string;
  /** 0 = standalone redis-server, K = cluster of K masters. */
  shards: number;
  admitted: number;
  refused: number;
  seconds: number;
  sessionsPerSecond: number;
  /** All nodes' CPU ÷ admitted sessions. */
  redisCpuUsPerSession: number;
  /** Per node: its CPU ÷ all admitted sessions, its cores used, and the keys it holds at the end. */
  perShard: { cpuUsPerSession: number; cores: number; keys: number }[];
  /** Commands Redis ran per admitted session (calls of scripts and of what they call, INFO commandstats). */
  commandsPerSession: number;
  /**
   * This process's CPU (the simulated pods' limiters and their ioredis clients, user + system)
   * ÷ admitted sessions: the pod's side of admitting one, without sockets to clients.
   */
  podCpuUsPerSession?: number;
}

interface Target {
  clientFor(): RedisClient;
  nodes: number[];
  stop(): Promise<void>;
}

async function startTarget(shards: number): Promise<Target> {
  if (shards === 0) {
    const redis = await startRedis();
    return { clientFor: () => createRedisClient({ url: redis.url }), nodes: [redis.port], stop: () => redis.stop() };
  }
  // redis-cli --cluster create refuses fewer than 3 masters, so every K is made the same way
  // (CLUSTER ADDSLOTSRANGE + MEET, test/helpers/redis.ts): a fair comparison across K.
  const cluster = await startRedisCluster(shards);
  const [seed, ...rest] = cluster.nodes;
  return {
    clientFor: () =>
      createRedisClient({ url: `redis://${seed!.host}:${seed!.port}`, cluster: true, clusterNodes: rest }),
    nodes: cluster.nodes.map((n) => n.port),
    stop: () => cluster.stop(),
  };
}

async function nodeStats(ports: readonly number[]): Promise<{ cpuMs: number; calls: number; keys: number }[]> {
  return Promise.all(
    ports.map(async (port) => {
      const c = createRedisClient({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 10_000 });
      try {
        await waitForReady(c, 5000);
        const info = `${await c.info('cpu')}\n${await c.info('commandstats')}\n${await c.info('keyspace')}`;
        const num = (re: RegExp): number => Number(re.exec(info)?.[1] ?? 0);
        let calls = 0;
        for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
          if (!['info', 'cluster', 'dbsize', 'client', 'select', 'hello', 'command'].includes(m[1]!))
            calls += Number(m[2]);
        if (process.env.ADMISSION_STATS)
          process.stderr.write(
            info
              .split('\n')
              .filter((l) => l.startsWith('cmdstat_') || l.startsWith('used_cpu'))
              .join('\n') + '\n',
          );
        return {
          cpuMs: (num(/^used_cpu_user:([\d.]+)/m) + num(/^used_cpu_sys:([\d.]+)/m)) * 1000,
          calls,
          keys: num(/^db0:keys=(\d+)/m),
        };
      } finally {
        await closeRedisClient(c);
      }
    }),
  );
}

export async function measureAdmission(o: {
  variant: string;
  create: CreateLimiter;
  shards: number;
  pods: number;
  concurrency: number;
  seconds: number;
  rules: number;
  users: number;
}): Promise<AdmissionRun> {
  const target = await startTarget(o.shards);
  const clients: RedisClient[] = [];
  const limiters: (Limiter & { close(): Promise<void> })[] = [];
  try {
    for (let p = 0; p < o.pods; p++) {
      const client = target.clientFor();
      if (!(await waitForReady(client, 10_000))) throw new Error('redis not ready');
      clients.push(client);
      limiters.push(o.create({ client, prefix: 'bench', podId: `pod${p}` }));
    }
    let admitted = 0;
    let refused = 0;
    let seq = 0;
    let stop = false;
    const session = async (limiter: Limiter, lane: number): Promise<void> => {
      while (!stop) {
        const n = seq++;
        const req: AdmitRequest = {
          ruleId: `bench/rules/r${n % o.rules}`,
          limits: {
            connectionRate: { perSecond: 1_000_000, burst: 1_000_000, key: 'SourceIP' },
            concurrentSessions: { max: 1_000_000, key: 'UserID' },
          },
          sourceIp: `10.0.${lane & 255}.${n & 255}`,
          userId: `user-${n % o.users}`,
          sessionId: String(n),
        };
        const admission = await limiter.admit(req);
        if (admission.ok) {
          admitted += 1;
          admission.lease.release();
        } else refused += 1;
      }
    };
    // Warm-up: scripts loaded on every connection, keys created, V8 warmed.
    stop = false;
    let lanes = limiters.flatMap((l, p) =>
      Array.from({ length: o.concurrency }, (_, c) => session(l, p * o.concurrency + c)),
    );
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(lanes);
    await new Promise((r) => setTimeout(r, 100)); // the last releases
    const before = await nodeStats(target.nodes);
    admitted = 0;
    refused = 0;
    stop = false;
    const started = performance.now();
    const podCpu = process.cpuUsage();
    lanes = limiters.flatMap((l, p) =>
      Array.from({ length: o.concurrency }, (_, c) => session(l, p * o.concurrency + c)),
    );
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    stop = true;
    await Promise.all(lanes);
    const seconds = (performance.now() - started) / 1000;
    const podCpuUs = Object.values(process.cpuUsage(podCpu)).reduce((a, b) => a + b, 0);
    await new Promise((r) => setTimeout(r, 100));
    const after = await nodeStats(target.nodes);
    const cpu = after.map((a, i) => a.cpuMs - before[i]!.cpuMs);
    const calls = after.reduce((s, a, i) => s + a.calls - before[i]!.calls, 0);
    return {
      variant: o.variant,
      shards: o.shards,
      admitted,
      refused,
      seconds,
      sessionsPerSecond: admitted / seconds,
      redisCpuUsPerSession: (cpu.reduce((s, x) => s + x, 0) * 1000) / admitted,
      perShard: cpu.map((ms, i) => ({
        cpuUsPerSession: (ms * 1000) / admitted,
        cores: ms / 1000 / seconds,
        keys: after[i]!.keys,
      })),
      commandsPerSession: calls / admitted,
      podCpuUsPerSession: podCpuUs / admitted,
    };
  } finally {
    await Promise.allSettled(limiters.map((l) => l.close()));
    await Promise.allSettled(clients.map((c) => closeRedisClient(c)));
    await target.stop();
  }
}

export async function loadLimiter(root: string): Promise<CreateLimiter> {
  const mod = (await import(path.join(root, 'src', 'limits', 'redis-limiter.ts'))) as {
    createRedisLimiter: CreateLimiter;
  };
  return mod.createRedisLimiter;
}

export function renderAdmission(runs: readonly AdmissionRun[]): string {
  const lines = [
    '| variant | Redis | sessions/s | Redis CPU µs/session (all nodes) | per shard: µs/session, cores, keys | commands/session | pod CPU µs/session |',
    '|---|---|---:|---:|---|---:|---:|',
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.variant} | ${r.shards === 0 ? 'standalone' : `cluster K=${r.shards}`} | ${r.sessionsPerSecond.toFixed(0)} | ${r.redisCpuUsPerSession.toFixed(1)} | ` +
        `${r.perShard.map((s) => `${s.cpuUsPerSession.toFixed(1)} µs, ${s.cores.toFixed(2)} cores, ${s.keys} keys`).join('; ')} | ${r.commandsPerSession.toFixed(2)} | ${r.podCpuUsPerSession?.toFixed(1) ?? '—'} |`,
    );
  }
  return lines.join('\n');
}

export function admissionCommand(o: {
  shards: readonly number[];
  pods: number;
  concurrency: number;
  seconds: number;
  rules: number;
  users: number;
  baseline?: string | undefined;
}): string {
  return (
    `scripts/node bench/admission.ts --shards ${o.shards.join(',')} --pods ${o.pods} --concurrency ${o.concurrency} --seconds ${o.seconds} --rules ${o.rules} --users ${o.users}` +
    (o.baseline === undefined ? '' : ` --baseline ${o.baseline}`)
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      shards: { type: 'string', default: '0,1,2,3' },
      pods: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '8' },
      seconds: { type: 'string', default: '4' },
      rules: { type: 'string', default: '64' },
      users: { type: 'string', default: '4' },
      baseline: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const opts = {
    shards: values.shards.split(',').map(Number),
    pods: Number(values.pods),
    concurrency: Number(values.concurrency),
    seconds: Number(values.seconds),
    rules: Number(values.rules),
    users: Number(values.users),
    baseline: values.baseline,
  };
  const variants: [string, CreateLimiter][] = [['this checkout', await loadLimiter(repoRoot)]];
  if (opts.baseline !== undefined) variants.unshift(['baseline', await loadLimiter(path.resolve(opts.baseline))]);
  const runs: AdmissionRun[] = [];
  for (const shards of opts.shards) {
    for (const [variant, create] of variants) {
      const run = await measureAdmission({ ...opts, variant, create, shards });
      process.stderr.write(
        `${variant}, ${shards === 0 ? 'standalone' : `K=${shards}`}: ${run.sessionsPerSecond.toFixed(0)}/s, Redis ${run.redisCpuUsPerSession.toFixed(1)} µs/session, ${run.commandsPerSession.toFixed(2)} commands/session, pod ${run.podCpuUsPerSession?.toFixed(1)} µs/session\n`,
      );
      runs.push(run);
    }
  }
  mkdirSync(path.join(benchRoot, 'results'), { recursive: true });
  writeFileSync(
    path.join(benchRoot, 'results', 'admission-latest.json'),
    `${JSON.stringify({ command: admissionCommand(opts), runs })}\n`,
  );
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ command: admissionCommand(opts), runs })}\n`
      : `${renderAdmission(runs)}\n\n${admissionCommand(opts)}\n`,
  );
}
