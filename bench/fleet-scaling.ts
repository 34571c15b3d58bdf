// The fleet's scaling curve for rule pushes: how long a push takes to be enforced when Redis
// serves many subscribed pods and the snapshot holds many policies. A real redis-server, one real
// proxy process (its SOCKS answer is what "enforced" means), and S simulated pods: each is two
// raw RESP connections doing exactly what a proxy's rule source does on a notice (SUBSCRIBE the
// channel; on a message GET the pointer, then GET the snapshot it names). Per push: the time
// until the real proxy answers with the new rules, the time until every simulated pod holds the
// whole new snapshot, and Redis's own CPU (INFO cpu) spent on the push.
//
//   scripts/node bench/fleet-scaling.ts [--subscribers 1000] [--policies 10000] [--pushes 10] [--json]
import net from 'node:net';
import { parseArgs } from 'node:util';
import type { Socks4Policy } from '../src/policy/index.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../src/redis/connection.ts';
import { ruleKeys } from '../src/rules/redis-keys.ts';
import { publishSnapshot } from '../src/rules/publish-snapshot.ts';
import { probe, startProxyProcess, startSink, type ProxyProcess } from '../test/helpers/fleet.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { summarize, type Summary } from './lib/stats.ts';

export interface FleetScalingReport {
  command: string;
  subscribers: number;
  policies: number;
  snapshotBytes: number;
  pushes: number;
  /** publish call → the real proxy answers with the new rules (ms). */
  enforcedMs: { p50: number; p99: number; max: number };
  /** publish call → every simulated pod holds the new snapshot (ms), per push. */
  allPodsMs: { p50: number; p99: number; max: number };
  /** publish call → each pod holds it, over every pod and push (ms). */
  perPodMs: { p50: number; p99: number };
  publishCallMs: Summary | null;
  redisCpuMsPerPush: Summary | null;
}

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;

/** One policy per tenant (a team's Socks4Policy), and a platform policy holding the toggled rule. */
function policies(count: number, togglePort: number, toggle: 'Allow' | 'Deny', generation: number): Socks4Policy[] {
  const meta = (name: string) => ({ name, namespace: 'bench' });
  const out: Socks4Policy[] = [{
    apiVersion: 'socks4-fleet.io/v1alpha1', kind: 'Socks4Policy', metadata: meta('platform'),
    // The generation makes every push a new snapshot version, even when the toggle comes back.
    spec: { priority: 10 + generation, rules: [{ name: 'toggle', action: toggle, to: { cidrs: ['127.0.0.1/32'], ports: [String(togglePort)] } }] },
  }];
  for (let t = 0; t < count - 1; t++) {
    out.push({
      apiVersion: 'socks4-fleet.io/v1alpha1', kind: 'Socks4Policy', metadata: meta(`team-${t}`),
      spec: {
        priority: 1000,
        rules: [{
          name: `tenant-${t}`, action: 'Allow',
          from: { cidrs: [`10.${(t >> 8) & 255}.${t & 255}.0/24`], userids: [`team-${t}`, `svc-${t}-*`] },
          to: { cidrs: ['0.0.0.0/0'], ports: ['443', '8000-8999'] },
        }],
      },
    });
  }
  return out;
}

/** A simulated pod: resolves `onLoaded(version)` each time it holds a whole new snapshot. */
async function simulatedPod(port: number, keys: ReturnType<typeof ruleKeys>, onLoaded: (version: string) => void): Promise<() => void> {
  const sub = net.connect({ host: '127.0.0.1', port });
  const cmd = net.connect({ host: '127.0.0.1', port });
  await Promise.all([new Promise((r) => sub.once('connect', r)), new Promise((r) => cmd.once('connect', r))]);
  const resp = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  // Bulk replies on the command connection, one at a time: a "$<length>" header, then that many
  // bytes and CRLF, counted as they arrive and never copied (a pod holds the whole snapshot; the
  // benchmark only needs to know when it has): only a short reply (the pointer) is kept as text.
  let header = '';
  let left = -1; // body bytes + CRLF still to come; -1 while reading a header
  let short: Buffer[] = [];
  let waiter: ((value: string | null) => void) | null = null;
  cmd.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (left < 0) {
        const eol = chunk.indexOf(10, at);
        header += chunk.toString('latin1', at, eol < 0 ? chunk.length : eol + 1);
        if (eol < 0) return;
        at = eol + 1;
        const length = Number(header.slice(1).trim());
        header = '';
        if (length < 0) {
          waiter?.(null);
          continue;
        }
        left = length + 2;
        short = [];
      }
      const take = Math.min(left, chunk.length - at);
      if (left <= 202) short.push(chunk.subarray(at, at + take));
      left -= take;
      at += take;
      if (left === 0) {
        left = -1;
        const text = Buffer.concat(short).toString();
        waiter?.(text.length > 0 ? text.slice(0, -2) : '');
      }
    }
  });
  const get = (key: string): Promise<string | null> => new Promise((resolve) => {
    waiter = resolve;
    cmd.write(resp('GET', key));
  });
  let busy = Promise.resolve();
  sub.on('data', (chunk: Buffer) => {
    if (!chunk.includes('message')) return; // the subscribe confirmation
    busy = busy.then(async () => {
      const version = await get(keys.pointer);
      if (version === null) return;
      await get(keys.snapshot(version));
      onLoaded(version);
    });
  });
  sub.write(resp('SUBSCRIBE', keys.channel));
  return () => {
    sub.destroy();
    cmd.destroy();
  };
}

export async function measureFleetScaling(options: { subscribers: number; policies: number; pushes: number; log?: (l: string) => void }): Promise<FleetScalingReport> {
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const redis = await startRedis();
  // Redis is busy for seconds sending every pod its snapshot: the admin connection waits it out.
  const admin = createRedisClient({ url: redis.url, commandTimeoutMs: 600_000 });
  const sink = await startSink();
  const prefix = 'scaling';
  const keys = ruleKeys(prefix);
  const closers: (() => void)[] = [];
  let proxy: ProxyProcess | null = null;
  try {
    if (!(await waitForReady(admin, 5000))) throw new Error('redis not ready');
    const cpu = async (): Promise<number> => {
      const info = await admin.info('cpu');
      const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
      return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
    };
    const first = await publishSnapshot(admin, prefix, policies(options.policies, sink.port, 'Allow', 0), { source: 'bench' });
    const snapshotBytes = Number(await admin.strlen(first.snapshotKey));
    log(`snapshot: ${options.policies} policies, ${(snapshotBytes / 1024).toFixed(0)} KiB`);
    proxy = await startProxyProcess(['--redis-url', redis.url, '--redis-prefix', prefix, '--log-level', 'info', '--drain-grace', '0'], 120_000);
    const loaded = new Map<string, number[]>();
    for (let i = 0; i < options.subscribers; i++) {
      closers.push(await simulatedPod(redis.port, keys, (version) => {
        const at = performance.now();
        (loaded.get(version) ?? loaded.set(version, []).get(version)!).push(at);
      }));
    }
    const enforced: number[] = [];
    const allPods: number[] = [];
    const perPod: number[] = [];
    const publishCall: number[] = [];
    const redisCpu: number[] = [];
    for (let push = 1; push <= options.pushes; push++) {
      const toggle = push % 2 === 1 ? 'Deny' : 'Allow';
      const expected = toggle === 'Deny' ? 91 : 90;
      const wanted = policies(options.policies, sink.port, toggle, push);
      const cpuBefore = await cpu();
      const started = performance.now();
      const published = await publishSnapshot(admin, prefix, wanted, { source: 'bench' });
      publishCall.push(performance.now() - started);
      for (let round = 0; ; round++) {
        if ((await probe(proxy.port, sink.port)) === expected) break;
        if (round > 100_000) throw new Error('push never enforced');
      }
      enforced.push(performance.now() - started);
      const deadline = performance.now() + 300_000;
      while ((loaded.get(published.version)?.length ?? 0) < options.subscribers) {
        if (performance.now() > deadline) throw new Error(`only ${loaded.get(published.version)?.length ?? 0} pods loaded push ${push}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      const times = loaded.get(published.version)!.map((t) => t - started);
      allPods.push(Math.max(...times));
      perPod.push(...times);
      redisCpu.push((await cpu()) - cpuBefore);
      log(`  push ${push}: enforced ${enforced.at(-1)!.toFixed(0)} ms, all ${options.subscribers} pods ${allPods.at(-1)!.toFixed(0)} ms, Redis CPU ${redisCpu.at(-1)!.toFixed(0)} ms`);
    }
    const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
    const [e, a, p] = [sorted(enforced), sorted(allPods), sorted(perPod)];
    return {
      command: `scripts/node bench/fleet-scaling.ts --subscribers ${options.subscribers} --policies ${options.policies} --pushes ${options.pushes}`,
      subscribers: options.subscribers, policies: options.policies, snapshotBytes, pushes: options.pushes,
      enforcedMs: { p50: percentile(e, 50), p99: percentile(e, 99), max: e.at(-1)! },
      allPodsMs: { p50: percentile(a, 50), p99: percentile(a, 99), max: a.at(-1)! },
      perPodMs: { p50: percentile(p, 50), p99: percentile(p, 99) },
      publishCallMs: summarize(publishCall),
      redisCpuMsPerPush: summarize(redisCpu),
    };
  } finally {
    for (const close of closers) close();
    await proxy?.kill('SIGKILL');
    await sink.close();
    await closeRedisClient(admin);
    await redis.stop();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      subscribers: { type: 'string', default: '1000' },
      policies: { type: 'string', default: '10000' },
      pushes: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
    },
  });
  const report = await measureFleetScaling({ subscribers: Number(values.subscribers), policies: Number(values.policies), pushes: Number(values.pushes) });
  process.stdout.write(`${values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2)}\n`);
}
