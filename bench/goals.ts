// Issue #16's goals, each measured and printed as met / missed with its figures and the command
// behind them (`make bench` runs this after the side-by-side table; `make bench-goals` alone):
//   1. CPU per session ÷ the Node floor: embedded ≤ 1.15×, Redis mode ≤ 1.35×
//   2. tracing at 100 % ≤ 1.25× the CPU per session of tracing off, no span lost
//   3. sessions/s at 1 and 2 workers
//   4. Redis CPU per admitted session ≤ 20 µs (behind a real proxy, and the limiter alone:
//      bench/admission.ts); push → enforced p99 with many pods and policies, whole document vs
//      chunks in one run (bench/fleet-scaling.ts); Redis Cluster of K = 1, 2, 3 masters
// Ratios are taken inside a round (both sides under the same neighbours), then the median
// (min..max) over rounds. Writes bench/results/goals-latest.{md,json}.
//
//   scripts/node bench/goals.ts [--quick] [--rounds 3] [--subscribers 1000] [--policies 10000]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { measureCpuPerSession, Mode, renderCpuPerSession } from './cpu-per-session.ts';
import { admissionCommand, loadLimiter, measureAdmission, renderAdmission, type AdmissionRun } from './admission.ts';
import {
  measureFleetScaling,
  renderFleetScaling,
  type FanOutFigures,
  type FleetScalingReport,
} from './fleet-scaling.ts';
import { benchRoot, childEnv, repoRoot } from './lib/paths.ts';
import { formatNumber, formatSummary, ratiosPerRun, summarize, type Summary } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    subscribers: { type: 'string' },
    policies: { type: 'string' },
    out: { type: 'string', default: path.join(benchRoot, 'results') },
  },
});
const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const subscribers = Number(values.subscribers ?? (quick ? 100 : 1000));
const policies = Number(values.policies ?? (quick ? 1000 : 10_000));
const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Goal {
  goal: string;
  verdict: 'met' | 'missed' | 'measured';
  figures: string;
  command: string;
}
const goals: Goal[] = [];
const verdict = (s: Summary | null, limit: number): Goal['verdict'] =>
  s !== null && s.median <= limit ? 'met' : 'missed';

log(`1/4 CPU per session: floor, embedded, Redis, Redis+tracing, embedded with 2 workers (${rounds} rounds)`);
const cpu = await measureCpuPerSession({
  rounds,
  seconds: quick ? 2 : 3,
  clients: 50,
  modes: [Mode.Floor, Mode.Embedded, Mode.Redis, Mode.RedisTracing, Mode.Embedded2Workers],
  log,
});
const m = cpu.modes;
const floor = m.floor!;
goals.push({
  goal: '1a. embedded CPU/session ≤ 1.15× the Node floor (logs at info, metrics on)',
  verdict: verdict(m.embedded!.ratioToFloor, 1.15),
  figures: `${formatSummary(m.embedded!.ratioToFloor, '×')}: ${formatSummary(m.embedded!.cpuUsPerSession, ' µs')} vs floor ${formatSummary(floor.cpuUsPerSession, ' µs')}`,
  command: cpu.command,
});
goals.push({
  goal: '1b. Redis-mode CPU/session ≤ 1.35× the Node floor',
  verdict: verdict(m.redis!.ratioToFloor, 1.35),
  figures: `${formatSummary(m.redis!.ratioToFloor, '×')}: ${formatSummary(m.redis!.cpuUsPerSession, ' µs')}`,
  command: cpu.command,
});
const tracingRatio = summarize(ratiosPerRun(m['redis-tracing']!.cpuPerRound, m.redis!.cpuPerRound));

log('2/4 tracing: spans recorded and exported (in-process proxy, bench/tracing-cost.ts)');
const tracingArgs = ['--rounds', quick ? '2' : '5', '--seconds', '2', '--json'];
const tracing = JSON.parse(
  execFileSync(process.execPath, [path.join(benchRoot, 'tracing-cost.ts'), ...tracingArgs], {
    cwd: repoRoot,
    env: childEnv(),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 600_000,
  })
    .trim()
    .split('\n')
    .at(-1)!,
) as {
  command: string;
  modes: Record<string, { cpuRatio: number; recorded: number; exported: number; failures: number }>;
};
const full = tracing.modes['100%']!;
// Both benches: the in-process proxy's recorded = exported, and the Redis+tracing process's
// session spans received by the sink = its sessions logged (each session one span).
const processSpans = m['redis-tracing']!.spans;
const noSpanLost =
  full.recorded > 0 &&
  full.recorded === full.exported &&
  processSpans !== null &&
  processSpans.exported === processSpans.sessions;
goals.push({
  goal: '2. tracing at 100 % ≤ 1.25× the CPU/session of tracing off, no span lost',
  verdict: verdict(tracingRatio, 1.25) === 'met' && noSpanLost ? 'met' : 'missed',
  figures:
    `process CPU (Redis mode, all threads) ${formatSummary(tracingRatio, '×')}; in-process proxy thread ${formatNumber(full.cpuRatio)}×; ` +
    `spans recorded ${full.recorded}, exported ${full.exported}; Redis+tracing process: session spans ${processSpans?.exported ?? '?'} for ${processSpans?.sessions ?? '?'} sessions`,
  command: `${cpu.command}; ${tracing.command}`,
});
const workerRate = summarize(ratiosPerRun(m['embedded-2-workers']!.ratePerRound, m.embedded!.ratePerRound));
goals.push({
  goal: `3. sessions/s at 1 and 2 workers (this machine: ${os.cpus().length} cores shared with the load generator and neighbours)`,
  verdict: 'measured',
  figures:
    `1 worker ${formatSummary(m.embedded!.sessionsPerSecond, '/s')}, 2 workers ${formatSummary(m['embedded-2-workers']!.sessionsPerSecond, '/s')} ` +
    `(2 ÷ 1: ${formatSummary(workerRate, '×')}); CPU/session ${formatSummary(m.embedded!.cpuUsPerSession, ' µs')} vs ${formatSummary(m['embedded-2-workers']!.cpuUsPerSession, ' µs')}`,
  command: cpu.command,
});

log(`3/4 Redis CPU per admitted session and Redis Cluster of K shards (bench/admission.ts)`);
const admissionOpts = { shards: [0, 1, 2, 3], pods: 4, concurrency: 8, seconds: quick ? 2 : 4, rules: 64, users: 4 };
const createLimiter = await loadLimiter(repoRoot);
const admissions: AdmissionRun[] = [];
for (const shards of admissionOpts.shards) {
  admissions.push(
    await measureAdmission({ ...admissionOpts, variant: 'this checkout', create: createLimiter, shards }),
  );
  log(
    `  ${shards === 0 ? 'standalone' : `K=${shards}`}: ${formatNumber(admissions.at(-1)!.sessionsPerSecond)}/s, ${formatNumber(admissions.at(-1)!.redisCpuUsPerSession)} µs/session`,
  );
}
const standalone = admissions.find((r) => r.shards === 0)!;
goals.push({
  goal: '4a. Redis CPU per admitted session ≤ 20 µs (one Redis core ≥ 50 000 sessions/s)',
  verdict: verdict(m.redis!.auxCpuUsPerSession, 20),
  figures:
    `behind a real proxy ${formatSummary(m.redis!.auxCpuUsPerSession, ' µs')} (redis-server process CPU ÷ sessions, /proc); ` +
    `the limiter alone, ${admissionOpts.pods} pods × ${admissionOpts.concurrency} sessions: ${formatNumber(standalone.redisCpuUsPerSession)} µs at ${formatNumber(standalone.sessionsPerSecond)}/s, ` +
    `${formatNumber(standalone.commandsPerSession)} Redis commands per session`,
  command: `${cpu.command}; ${admissionCommand(admissionOpts)}`,
});
goals.push({
  goal: '4c. Redis Cluster of K shards (K = 1, 2, 3 masters on loopback)',
  verdict: 'measured',
  figures: admissions
    .filter((r) => r.shards > 0)
    .map(
      (r) =>
        `K=${r.shards}: ${formatNumber(r.sessionsPerSecond)}/s, ${formatNumber(r.redisCpuUsPerSession)} µs/session in all, ` +
        `per shard ${r.perShard.map((x) => `${formatNumber(x.cpuUsPerSession)} µs (${x.keys} keys)`).join(' / ')}`,
    )
    .join('; '),
  command: admissionCommand(admissionOpts),
});

log(`4/4 push → enforced with ${subscribers} simulated pods and ${policies} policies, whole document vs chunks`);
const pushGoal = `4b. push → enforced p99 with ${subscribers} subscribed pods and ${policies} policies (target set here, the issue names none: real proxy p99 ≤ 1 s)`;
let scaling: FleetScalingReport | null = null;
try {
  scaling = await measureFleetScaling({ subscribers, policies, pushes: quick ? 2 : 3, log });
} catch (error) {
  // The goals above are measured already: report this one as failed, not the whole run.
  goals.push({
    goal: pushGoal,
    verdict: 'missed',
    figures: `not measured: ${(error as Error).message.split('\n')[0]}`,
    command: `scripts/node bench/fleet-scaling.ts --subscribers ${subscribers} --policies ${policies}`,
  });
}
if (scaling !== null) {
  const [before, after] = [
    scaling.modes.find((x) => x.mode === 'document'),
    scaling.modes.find((x) => x.mode === 'chunks'),
  ];
  const line = (f: FanOutFigures | undefined): string =>
    f === undefined
      ? '—'
      : `real proxy p50 ${formatNumber(f.enforcedMs.p50)} ms, p99 ${formatNumber(f.enforcedMs.p99)} ms; ` +
        `each pod p50 ${formatNumber(f.perPodMs.p50)} ms, p99 ${formatNumber(f.perPodMs.p99)} ms; Redis CPU ${formatSummary(f.redisCpuMsPerPush, ' ms')} and ` +
        `${formatNumber((f.redisOutputBytesPerPush?.median ?? 0) / 1048576)} MiB sent per push`;
  goals.push({
    goal: pushGoal,
    verdict: after !== undefined && after.enforcedMs.p99 <= 1000 ? 'met' : 'missed',
    figures: `after (manifest + changed chunks): ${line(after)}. Before (whole ${formatNumber(scaling.snapshotBytes / 1024)} KiB document per pod), same run: ${line(before)}`,
    command: scaling.command,
  });
}

const table = [
  '| goal | verdict | figures (median (min..max) over rounds) | command |',
  '|---|---|---|---|',
  ...goals.map((g) => `| ${g.goal} | **${g.verdict}** | ${g.figures} | \`${g.command}\` |`),
].join('\n');
const noise =
  `foreign cores (other processes) up to ${cpu.foreignCoresMax.toFixed(2)} of ${os.cpus().length} during the CPU windows; ` +
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} at the end`;
const markdown =
  `# Issue #16 goals (${new Date().toISOString()})\n\n${table}\n\n${noise}\n\n${renderCpuPerSession(cpu)}\n\n` +
  `## Admission (Redis side)\n\n${renderAdmission(admissions)}\n\n` +
  (scaling === null ? '' : `## Rule pushes\n\n${renderFleetScaling(scaling)}\n`);
process.stdout.write(`\n${markdown}`);
mkdirSync(values.out, { recursive: true });
writeFileSync(path.join(values.out, 'goals-latest.md'), markdown);
writeFileSync(
  path.join(values.out, 'goals-latest.json'),
  `${JSON.stringify({ goals, cpu, tracing, admissions, scaling, noise }, null, 2)}\n`,
);
