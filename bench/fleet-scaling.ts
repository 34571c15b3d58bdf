// The fleet's scaling curve for rule pushes: how long a push takes to be enforced when Redis
// serves many subscribed pods and the snapshot holds many policies. A real redis-server, one real
// proxy process (its SOCKS answer is what "enforced" means), and S simulated pods: each is two
// raw RESP connections doing what a proxy's rule source does on a notice (SUBSCRIBE the channel;
// on a message GET the pointer, then either GET the whole document it names (`document`, how pods
// read before chunks) or GET its manifest and MGET only the chunks the pod does not hold
// (`chunks`, what src/rules/redis-source.ts does now). Both modes run in one run, against one
// Redis, one after the other. Per push: the time until the real proxy answers with the new rules,
// the time until each and every simulated pod holds the new snapshot, and Redis's own CPU
// (INFO cpu) and output bytes spent on the push.
//
//   scripts/node bench/fleet-scaling.ts [--subscribers 1000] [--policies 10000] [--pushes 10]
//                                       [--modes document,chunks] [--json]
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Socks4Policy } from '../src/policy/index.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../src/redis/connection.ts';
import { ruleKeys } from '../src/rules/redis-keys.ts';
import { publishSnapshot } from '../src/rules/publish-snapshot.ts';
import { probe, startProxyProcess, startSink, type ProxyProcess } from '../test/helpers/fleet.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { benchRoot } from './lib/paths.ts';
import { summarize, type Summary } from './lib/stats.ts';

export interface FanOutFigures {
  mode: FetchMode;
  pushes: number;
  /** publish call → the real proxy answers with the new rules (ms). */
  enforcedMs: { p50: number; p99: number; max: number };
  /** publish call → every simulated pod holds the new snapshot (ms), per push. */
  allPodsMs: { p50: number; p99: number; max: number };
  /** publish call → each pod holds it, over every pod and push (ms). */
  perPodMs: { p50: number; p99: number };
  publishCallMs: Summary | null;
  redisCpuMsPerPush: Summary | null;
  /** Bytes Redis sent per push (INFO stats total_net_output_bytes), all pods together. */
  redisOutputBytesPerPush: Summary | null;
}

export interface FleetScalingReport {
  command: string;
  subscribers: number;
  policies: number;
  snapshotBytes: number;
  manifestBytes: number;
  chunks: number;
  /** Before (every pod fetches the document) and after (manifest + changed chunks), same run. */
  modes: FanOutFigures[];
}

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;

/** One policy per tenant (a team's Socks4Policy), and a platform policy holding the toggled rule. */
function policies(count: number, togglePort: number, toggle: 'Allow' | 'Deny', generation: number): Socks4Policy[] {
  const meta = (name: string) => ({ name, namespace: 'bench' });
  const out: Socks4Policy[] = [
    {
      apiVersion: 'socks4-fleet.io/v1alpha1',
      kind: 'Socks4Policy',
      metadata: meta('platform'),
      // The generation makes every push a new snapshot version, even when the toggle comes back.
      spec: {
        priority: 10 + generation,
        rules: [{ name: 'toggle', action: toggle, to: { cidrs: ['127.0.0.1/32'], ports: [String(togglePort)] } }],
      },
    },
  ];
  for (let t = 0; t < count - 1; t++) {
    out.push({
      apiVersion: 'socks4-fleet.io/v1alpha1',
      kind: 'Socks4Policy',
      metadata: meta(`team-${t}`),
      spec: {
        priority: 1000,
        rules: [
          {
            name: `tenant-${t}`,
            action: 'Allow',
            from: { cidrs: [`10.${(t >> 8) & 255}.${t & 255}.0/24`], userids: [`team-${t}`, `svc-${t}-*`] },
            to: { cidrs: ['0.0.0.0/0'], ports: ['443', '8000-8999'] },
          },
        ],
      },
    });
  }
  return out;
}

/** How a simulated pod reads a new version: the whole document (before) or manifest + missing chunks. */
export type FetchMode = 'document' | 'chunks';

/** Replies kept as text up to this size (pointer, manifest, chunks); a whole document is only counted. */
const KEEP_BYTES = 256 * 1024;

/**
 * A simulated pod: resolves `onLoaded(version)` each time it holds a whole new snapshot. It reads
 * RESP itself (bulk strings and arrays of them): a pod holds what it fetched, the benchmark only
 * needs to know when it has, so large replies are counted as they arrive and never copied.
 */
async function simulatedPod(
  port: number,
  keys: ReturnType<typeof ruleKeys>,
  mode: () => FetchMode,
  onLoaded: (version: string) => void,
): Promise<() => void> {
  const sub = net.connect({ host: '127.0.0.1', port });
  const cmd = net.connect({ host: '127.0.0.1', port });
  await Promise.all([new Promise((r) => sub.once('connect', r)), new Promise((r) => cmd.once('connect', r))]);
  const resp = (...args: string[]): string =>
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  let header = '';
  let left = -1; // body bytes + CRLF still to come; -1 while reading a header
  let kept: Buffer[] = [];
  let array: (string | null)[] | null = null;
  let arrayLeft = 0;
  let waiter: ((value: string | null | (string | null)[]) => void) | null = null;
  const item = (value: string | null): void => {
    if (array === null) return void waiter?.(value);
    array.push(value);
    if (--arrayLeft === 0) {
      const done = array;
      array = null;
      waiter?.(done);
    }
  };
  cmd.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (left < 0) {
        const eol = chunk.indexOf(10, at);
        header += chunk.toString('latin1', at, eol < 0 ? chunk.length : eol + 1);
        if (eol < 0) return;
        at = eol + 1;
        const kind = header[0];
        const length = Number(header.slice(1).trim());
        header = '';
        if (kind === '*') {
          if (length <= 0) waiter?.([]);
          else [array, arrayLeft] = [[], length];
          continue;
        }
        if (length < 0) {
          item(null);
          continue;
        }
        left = length + 2;
        kept = [];
      }
      const take = Math.min(left, chunk.length - at);
      if (left <= KEEP_BYTES + 2 || kept.length > 0) kept.push(chunk.subarray(at, at + take));
      left -= take;
      at += take;
      if (left === 0) {
        left = -1;
        const text = kept.length > 0 ? Buffer.concat(kept).toString() : '';
        item(text.length > 0 ? text.slice(0, -2) : '');
      }
    }
  });
  const call = <T>(...args: string[]): Promise<T> =>
    new Promise((resolve) => {
      waiter = resolve as (value: unknown) => void;
      cmd.write(resp(...args));
    });
  let held = new Set<string>();
  let busy = Promise.resolve();
  sub.on('data', (chunk: Buffer) => {
    if (!chunk.includes('message')) return; // the subscribe confirmation
    busy = busy.then(async () => {
      const version = await call<string | null>('GET', keys.pointer);
      if (version === null) return;
      if (mode() === 'document') {
        await call('GET', keys.snapshot(version));
        held = new Set();
      } else {
        const manifest = JSON.parse((await call<string | null>('GET', keys.manifest(version))) ?? '{"chunks":[]}') as {
          chunks: string[];
        };
        const missing = manifest.chunks.filter((id) => !held.has(id));
        if (missing.length > 0) await call('MGET', ...missing.map((id) => keys.chunk(id)));
        held = new Set(manifest.chunks);
      }
      onLoaded(version);
    });
  });
  sub.write(resp('SUBSCRIBE', keys.channel));
  return () => {
    sub.destroy();
    cmd.destroy();
  };
}

export async function measureFleetScaling(options: {
  subscribers: number;
  policies: number;
  pushes: number;
  modes?: readonly FetchMode[];
  log?: (l: string) => void;
}): Promise<FleetScalingReport> {
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const modes = options.modes ?? ['document', 'chunks'];
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
    const counters = async (): Promise<{ cpuMs: number; outBytes: number }> => {
      const info = `${await admin.info('cpu')}\n${await admin.info('stats')}`;
      const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
      return {
        cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000,
        outBytes: field('total_net_output_bytes'),
      };
    };
    const first = await publishSnapshot(admin, prefix, policies(options.policies, sink.port, 'Allow', 0), {
      source: 'bench',
    });
    const snapshotBytes = Number(await admin.strlen(first.snapshotKey));
    const manifest = JSON.parse((await admin.get(keys.manifest(first.version))) ?? '{}') as { chunks: string[] };
    const manifestBytes = Number(await admin.strlen(keys.manifest(first.version)));
    log(
      `snapshot: ${options.policies} policies, ${(snapshotBytes / 1024).toFixed(0)} KiB; manifest ${(manifestBytes / 1024).toFixed(1)} KiB, ${manifest.chunks.length} chunks`,
    );
    proxy = await startProxyProcess(
      ['--redis-url', redis.url, '--redis-prefix', prefix, '--log-level', 'info', '--drain-grace', '0'],
      120_000,
    );
    const loaded = new Map<string, number[]>();
    let mode: FetchMode = modes[0] ?? 'chunks';
    for (let i = 0; i < options.subscribers; i++) {
      closers.push(
        await simulatedPod(
          redis.port,
          keys,
          () => mode,
          (version) => {
            const at = performance.now();
            (loaded.get(version) ?? loaded.set(version, []).get(version)!).push(at);
          },
        ),
      );
    }
    const figures: FanOutFigures[] = [];
    let push = 0;
    for (const current of modes) {
      mode = current;
      // One unmeasured push: a pod switching to chunks holds none yet and fetches them all once.
      push += 1;
      const warm = await publishSnapshot(
        admin,
        prefix,
        policies(options.policies, sink.port, push % 2 === 1 ? 'Deny' : 'Allow', push),
        { source: 'bench' },
      );
      for (let i = 0; i < 60_000 && (loaded.get(warm.version)?.length ?? 0) < options.subscribers; i++)
        await new Promise((r) => setTimeout(r, 5));
      const enforced: number[] = [];
      const allPods: number[] = [];
      const perPod: number[] = [];
      const publishCall: number[] = [];
      const redisCpu: number[] = [];
      const redisOut: number[] = [];
      for (let n = 1; n <= options.pushes; n++) {
        push += 1;
        const toggle = push % 2 === 1 ? 'Deny' : 'Allow';
        const expected = toggle === 'Deny' ? 91 : 90;
        const wanted = policies(options.policies, sink.port, toggle, push);
        const before = await counters();
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
          if (performance.now() > deadline)
            throw new Error(`only ${loaded.get(published.version)?.length ?? 0} pods loaded push ${push}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        const times = loaded.get(published.version)!.map((t) => t - started);
        allPods.push(Math.max(...times));
        perPod.push(...times);
        const after = await counters();
        redisCpu.push(after.cpuMs - before.cpuMs);
        redisOut.push(after.outBytes - before.outBytes);
        log(
          `  ${current}, push ${n}: enforced ${enforced.at(-1)!.toFixed(0)} ms, all ${options.subscribers} pods ${allPods.at(-1)!.toFixed(0)} ms, ` +
            `Redis CPU ${redisCpu.at(-1)!.toFixed(0)} ms, sent ${(redisOut.at(-1)! / 1048576).toFixed(1)} MiB`,
        );
      }
      const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
      const [e, a, p] = [sorted(enforced), sorted(allPods), sorted(perPod)];
      figures.push({
        mode: current,
        pushes: options.pushes,
        enforcedMs: { p50: percentile(e, 50), p99: percentile(e, 99), max: e.at(-1)! },
        allPodsMs: { p50: percentile(a, 50), p99: percentile(a, 99), max: a.at(-1)! },
        perPodMs: { p50: percentile(p, 50), p99: percentile(p, 99) },
        publishCallMs: summarize(publishCall),
        redisCpuMsPerPush: summarize(redisCpu),
        redisOutputBytesPerPush: summarize(redisOut),
      });
    }
    return {
      command: `scripts/node bench/fleet-scaling.ts --subscribers ${options.subscribers} --policies ${options.policies} --pushes ${options.pushes} --modes ${modes.join(',')}`,
      subscribers: options.subscribers,
      policies: options.policies,
      snapshotBytes,
      manifestBytes,
      chunks: manifest.chunks.length,
      modes: figures,
    };
  } finally {
    for (const close of closers) close();
    await proxy?.kill('SIGKILL');
    await sink.close();
    await closeRedisClient(admin);
    await redis.stop();
  }
}

/** One line per fan-out mode: what goals.ts and the README quote. */
export function renderFleetScaling(r: FleetScalingReport): string {
  const rows = r.modes.map(
    (m) =>
      `| ${m.mode === 'document' ? 'whole document per pod (before)' : 'manifest + changed chunks (after)'} | ` +
      `${m.enforcedMs.p50.toFixed(0)} / ${m.enforcedMs.p99.toFixed(0)} | ${m.perPodMs.p50.toFixed(0)} / ${m.perPodMs.p99.toFixed(0)} | ${m.allPodsMs.max.toFixed(0)} | ` +
      `${m.redisCpuMsPerPush?.median.toFixed(0) ?? '—'} | ${m.redisOutputBytesPerPush === null ? '—' : (m.redisOutputBytesPerPush.median / 1048576).toFixed(1)} |`,
  );
  return [
    `${r.subscribers} simulated pods + 1 real proxy, ${r.policies} policies (document ${(r.snapshotBytes / 1024).toFixed(0)} KiB; manifest ${(r.manifestBytes / 1024).toFixed(1)} KiB, ${r.chunks} chunks), ${r.modes[0]?.pushes ?? 0} pushes per mode`,
    '',
    '| fan-out | real proxy enforcing p50 / p99 ms | each pod holding it p50 / p99 ms | last pod ms | Redis CPU ms per push | MiB sent per push |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      subscribers: { type: 'string', default: '1000' },
      policies: { type: 'string', default: '10000' },
      pushes: { type: 'string', default: '10' },
      modes: { type: 'string', default: 'document,chunks' },
      json: { type: 'boolean', default: false },
    },
  });
  const modes = values.modes.split(',') as FetchMode[];
  for (const m of modes)
    if (m !== 'document' && m !== 'chunks') throw new Error(`--modes: "${m}" is not document or chunks`);
  const report = await measureFleetScaling({
    subscribers: Number(values.subscribers),
    policies: Number(values.policies),
    pushes: Number(values.pushes),
    modes,
  });
  process.stdout.write(
    values.json ? `${JSON.stringify(report)}\n` : `${renderFleetScaling(report)}\n\n${report.command}\n`,
  );
  mkdirSync(path.join(benchRoot, 'results'), { recursive: true });
  writeFileSync(path.join(benchRoot, 'results', 'fleet-scaling-latest.json'), `${JSON.stringify(report)}\n`);
}
