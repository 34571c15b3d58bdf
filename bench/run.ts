// `make bench`: socks4-fleet side by side with Dante and with no proxy at all, interleaved in
// every run, then a table of medians and ratios, JSON next to it and an SVG chart of the ratios.
// bench/README.md explains how to read them. Never part of `make test`.
//
//   scripts/node bench/run.ts                 the full benchmark (3 runs, a few minutes)
//   scripts/node bench/run.ts --quick         handshake p50 (proxy vs direct) and RSS per idle session
//                                     at 1 000 sessions, embedded mode only (under a minute)
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { renderChart } from './lib/chart.ts';
import {
  ensureLoadgen,
  runLoadgen,
  type HandshakeResult,
  type IdleResult,
  type ThroughputResult,
} from './lib/loadgen.ts';
import type { PolicyEngineRow, RunRecord, TargetRun } from './lib/model.ts';
import { sampleNoise } from './lib/noise.ts';
import { benchRoot, childEnv, repoRoot } from './lib/paths.ts';
import { buildReport, renderMarkdown, toTargetInfo, type BenchReport } from './lib/report.ts';
import { formatNumber, formatSummary } from './lib/stats.ts';
import {
  DANTED,
  direct,
  startDante,
  startFloor,
  startEmbedded,
  startRedisMode,
  targetLabels,
  TargetId,
  type FleetOptions,
  type Target,
} from './lib/targets.ts';

const usage = `Usage: scripts/node bench/run.ts [--quick] [--runs N] [--out DIR] [--targets a,b] [--tests a,b]
  --runs N            runs to take medians over (default 3; at least 3 for the report's medians)
  --quick             direct and embedded only: handshake p50 and RSS per idle session at 1 000
  --targets LIST      ${Object.values(TargetId).join(',')} (default all)
  --tests LIST        handshake,throughput,idle,policy (default all)
  --handshake-seconds S, --throughput-seconds S, --idle-sessions N, --clients N
  --out DIR           where JSON, Markdown and SVG go (default bench/results)
`;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    out: { type: 'string', default: path.join(benchRoot, 'results') },
    targets: { type: 'string' },
    tests: { type: 'string' },
    'handshake-seconds': { type: 'string' },
    'throughput-seconds': { type: 'string', default: '2' },
    'idle-sessions': { type: 'string' },
    clients: { type: 'string', default: '50' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(usage);
  process.exit(0);
}

const quick = args.quick;
const runs = Math.max(1, Math.min(20, Number(args.runs)));
const handshakeSeconds = Number(args['handshake-seconds'] ?? (quick ? 2 : 3));
const throughputSeconds = Number(args['throughput-seconds']);
const idleSessions = Number(args['idle-sessions'] ?? (quick ? 1000 : 5000));
const clients = Number(args.clients);
const targetIds = new Set<string>(
  args.targets?.split(',') ?? (quick ? [TargetId.Direct, TargetId.Embedded] : Object.values(TargetId)),
);
const tests = new Set(
  args.tests?.split(',') ?? (quick ? ['handshake', 'idle'] : ['handshake', 'throughput', 'idle', 'policy']),
);

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function versionOf(command: string, argv: string[]): string {
  try {
    return (
      execFileSync(command, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .split('\n')[0]
        ?.trim() ?? '?'
    );
  } catch (error) {
    return `unavailable (${(error as Error).message.split('\n')[0]})`;
  }
}

type Starter = (options: FleetOptions) => Promise<Target>;

const starters: Record<TargetId, Starter> = {
  [TargetId.Direct]: async () => direct(),
  [TargetId.Floor]: () => startFloor(),
  [TargetId.Dante]: () => startDante(),
  [TargetId.Embedded]: (options) => startEmbedded(options),
  [TargetId.Redis]: (options) => startRedisMode(false, options),
  [TargetId.RedisTracing]: (options) => startRedisMode(true, options),
};

async function startTargets(): Promise<Target[]> {
  const out: Target[] = [];
  for (const id of Object.values(TargetId)) {
    if (!targetIds.has(id)) continue;
    log(`starting ${targetLabels[id]} ...`);
    const target = await starters[id]({});
    if (target.unavailable !== null) log(`  ${targetLabels[id]}: ${target.unavailable}`);
    out.push(target);
  }
  return out;
}

async function measurePolicyEngine(): Promise<PolicyEngineRow[]> {
  const stdout = execFileSync(process.execPath, [path.join(benchRoot, 'policy-engine.ts')], {
    cwd: repoRoot,
    env: childEnv(),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return JSON.parse(stdout) as PolicyEngineRow[];
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function measureRun(run: number, targets: readonly Target[]): Promise<RunRecord> {
  const live = targets.filter((t) => t.unavailable === null);
  // Rotate the order every run, so no target always goes first (warmest) or last (after the most
  // TIME_WAIT sockets and heap growth).
  const order = live.map((_, i) => live[(i + run - 1) % live.length] as Target);
  const { sample: noiseStart, counters } = sampleNoise(null);
  const record: RunRecord = {
    run,
    order: order.map((t) => t.id),
    noiseStart,
    noiseEnd: noiseStart,
    targets: {},
    policyEngine: null,
    failures: [],
  };
  const slot = (t: Target): TargetRun => (record.targets[t.id] ??= {});
  const step = async <T>(what: string, t: Target, measure: () => Promise<T>, keep: (r: T) => void): Promise<void> => {
    const where = `run ${run} ${what.padEnd(12)} ${targetLabels[t.id].padEnd(22)}`;
    try {
      const result = await measure();
      keep(result);
      log(`  ${where} ${summarizeStep(result)}`);
    } catch (error) {
      // One failed measurement leaves a gap in this run, not a lost benchmark.
      const message = (error as Error).message.split('\n')[0] ?? String(error);
      record.failures.push(`${where.replace(/\s+/g, ' ')}: ${message}`);
      log(`  ${where} FAILED: ${message}`);
    }
    await pause(200);
  };
  if (tests.has('handshake')) {
    for (const t of order) {
      await step(
        'handshake',
        t,
        () =>
          runLoadgen<HandshakeResult>('handshake', t.loadgen, {
            clients,
            duration: `${handshakeSeconds}s`,
            warmup: '500ms',
            'max-cycles': 2_000_000,
          }),
        (r) => (slot(t).handshake = r),
      );
    }
    // Latency without queueing: one client, one cycle at a time.
    for (const t of order) {
      await step(
        'handshake x1',
        t,
        () =>
          runLoadgen<HandshakeResult>('handshake', t.loadgen, {
            clients: 1,
            duration: '1s',
            warmup: '200ms',
            'max-cycles': 100_000,
          }),
        (r) => (slot(t).handshakeSingle = r),
      );
    }
  }
  if (tests.has('throughput')) {
    for (const sessions of [1, 8] as const) {
      for (const t of order) {
        await step(
          `tput x${sessions}`,
          t,
          () =>
            runLoadgen<ThroughputResult>('throughput', t.loadgen, {
              sessions,
              duration: `${throughputSeconds}s`,
              warmup: '500ms',
              'max-bytes': 64 * 2 ** 30,
            }),
          (r) => (sessions === 1 ? (slot(t).throughput1 = r) : (slot(t).throughput8 = r)),
        );
      }
    }
  }
  if (tests.has('idle')) {
    for (const t of order) {
      if (t.id === TargetId.Direct) continue; // no proxy, no proxy memory
      // A fresh process: one whose heap the load above already grew would hold new sessions in
      // pages it has already paid for, and its growth would under-count what a session costs.
      let fresh: Target | null = null;
      await step(
        'idle',
        t,
        async () => {
          fresh = await starters[t.id]({ probeTracing: false });
          return runLoadgen<IdleResult>('idle', fresh.loadgen, {
            sessions: idleSessions,
            concurrency: 64,
            settle: '1s',
          });
        },
        (r) => (slot(t).idle = r),
      );
      await (fresh as Target | null)?.stop();
    }
  }
  if (tests.has('policy')) {
    try {
      record.policyEngine = await measurePolicyEngine();
      log(
        `  run ${run} policy engine ${record.policyEngine.map((p) => `${p.rules} ${p.shape}: ${formatNumber(p.decisionsPerCpuSecond)}/CPU-s`).join(', ')}`,
      );
    } catch (error) {
      record.failures.push(`run ${run} policy engine: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  record.noiseEnd = sampleNoise(counters).sample;
  return record;
}

function summarizeStep(r: unknown): string {
  const x = r as Partial<HandshakeResult & ThroughputResult & IdleResult>;
  const errors = (x.errors ?? 0) > 0 ? `  errors ${x.errors} (${x.firstError ?? ''})` : '';
  if (x.cyclesPerSecond !== undefined) {
    return `${formatNumber(x.cyclesPerSecond)} cycles/s, p50 ${formatNumber((x.handshakeP50Us ?? 0) / 1000)} ms, CPU ${formatNumber(x.proxyCpuUsPerSession ?? 0)} µs/session${errors}`;
  }
  if (x.mibPerSecond !== undefined)
    return `${formatNumber(x.mibPerSecond)} MiB/s, CPU ${formatNumber(x.proxyCpuSecondsPerGiB ?? 0)} s/GiB${errors}`;
  if (x.rssBytesPerSession !== undefined) {
    const kib = (bytes: number | undefined): string => formatNumber((bytes ?? 0) / 1024);
    return `${x.opened}/${x.sessions} open, KiB/session RSS ${kib(x.rssBytesPerSession)} (marginal ${kib(x.marginalRssBytesPerSession)}), PSS ${kib(x.pssBytesPerSession)} (marginal ${kib(x.marginalPssBytesPerSession)})${errors}`;
  }
  return JSON.stringify(r);
}

function quickSummary(report: BenchReport): string {
  const p50 = report.values.handshakeP50 ?? {};
  const ratio = report.ratios.handshakeP50?.[TargetId.Embedded]?.direct ?? null;
  const single = report.values.handshakeP50Single ?? {};
  const singleRatio = report.ratios.handshakeP50Single?.[TargetId.Embedded]?.direct ?? null;
  const memory = report.values.idleMemory?.[TargetId.Embedded] ?? null;
  const marginal = report.values.idleMemoryMarginal?.[TargetId.Embedded] ?? null;
  return [
    `handshake p50, 1 client: through socks4-fleet (embedded) ${formatSummary(single[TargetId.Embedded] ?? null, ' ms')}, direct (TCP connect) ${formatSummary(single[TargetId.Direct] ?? null, ' ms')}; proxy ÷ direct ${formatSummary(singleRatio, '×')}`,
    `handshake p50, 50 clients: through socks4-fleet (embedded) ${formatSummary(p50[TargetId.Embedded] ?? null, ' ms')}, direct ${formatSummary(p50[TargetId.Direct] ?? null, ' ms')}; proxy ÷ direct ${formatSummary(ratio, '×')}`,
    `RSS per idle session at ${formatNumber(idleSessions)} idle sessions (embedded): ${formatSummary(memory, ' KiB')} (growth ÷ sessions), ${formatSummary(marginal, ' KiB')} per added session`,
  ].join('\n');
}

async function main(): Promise<void> {
  log('building the load generator (go build) ...');
  ensureLoadgen();
  const targets = await startTargets();
  const stopAll = async (): Promise<void> => {
    for (const t of targets) await t.stop().catch(() => {});
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  const records: RunRecord[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      log(`run ${run}/${runs}`);
      records.push(await measureRun(run, targets));
    }
  } finally {
    await stopAll();
  }
  const report = buildReport(records, targets.map(toTargetInfo));
  const machine = {
    node: process.version,
    go: versionOf('go', ['version']),
    dante: versionOf(DANTED, ['-v']),
    kernel: `${os.type()} ${os.release()}`,
    cpu: os.cpus()[0]?.model ?? '?',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  };
  const config = { runs, quick, handshakeSeconds, throughputSeconds, idleSessions, clients, tests: [...tests] };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const prefix = quick ? 'quick' : 'bench';
  const markdown = `## make bench (${new Date().toISOString()})\n\n${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, Node ${machine.node}, ${machine.dante}\n\n${renderMarkdown(report, records)}\n`;
  mkdirSync(args.out, { recursive: true });
  const files = {
    json: path.join(args.out, `${prefix}-${stamp}.json`),
    markdown: path.join(args.out, `${prefix}-${stamp}.md`),
    chart: path.join(args.out, `${prefix}-${stamp}.svg`),
  };
  const json = JSON.stringify(
    {
      machine,
      config,
      targets: targets.map((t) => ({ ...toTargetInfo(t), details: t.details() })),
      report,
      runs: records,
    },
    null,
    2,
  );
  const svg = renderChart(report, `${machine.cpu}, ${machine.cores} cores; ${runs} runs; ${new Date().toISOString()}`);
  for (const [file, text] of [
    [files.json, json],
    [files.markdown, markdown],
    [files.chart, svg],
  ] as const) {
    writeFileSync(file, text);
    writeFileSync(path.join(args.out, `${prefix}-latest${path.extname(file)}`), text);
  }
  process.stdout.write(`${markdown}\n`);
  if (quick) process.stdout.write(`${quickSummary(report)}\n\n`);
  process.stdout.write(
    `JSON: ${path.relative(repoRoot, files.json)}\nchart: ${path.relative(repoRoot, files.chart)}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
