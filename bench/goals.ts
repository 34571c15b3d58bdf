// Issue #16's goals, each measured and printed as met / missed with its figures and the command
// behind them (`make bench` runs this after the side-by-side table; `make bench-goals` alone):
//   1. CPU per session ÷ the Node floor: embedded ≤ 1.15×, Redis mode ≤ 1.35×
//   2. tracing at 100 % ≤ 1.25× the CPU per session of tracing off, no span lost
//   3. sessions/s at 1 and 2 workers
//   4. Redis CPU per admitted session ≤ 20 µs; push → enforced p99 with many pods and policies
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
import { measureFleetScaling } from './fleet-scaling.ts';
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

interface Goal { goal: string; verdict: 'met' | 'missed' | 'measured'; figures: string; command: string }
const goals: Goal[] = [];
const verdict = (s: Summary | null, limit: number): Goal['verdict'] => (s !== null && s.median <= limit ? 'met' : 'missed');

log(`1/3 CPU per session: floor, embedded, Redis, Redis+tracing, embedded with 2 workers (${rounds} rounds)`);
const cpu = await measureCpuPerSession({
  rounds, seconds: quick ? 2 : 3, clients: 50,
  modes: [Mode.Floor, Mode.Embedded, Mode.Redis, Mode.RedisTracing, Mode.Embedded2Workers], log,
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

log('2/3 tracing: spans recorded and exported (in-process proxy, bench/tracing-cost.ts)');
const tracingArgs = ['--rounds', quick ? '2' : '5', '--seconds', '2', '--json'];
const tracing = JSON.parse(execFileSync(process.execPath, [path.join(benchRoot, 'tracing-cost.ts'), ...tracingArgs], {
  cwd: repoRoot, env: childEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000,
}).trim().split('\n').at(-1)!) as { command: string; modes: Record<string, { cpuRatio: number; recorded: number; exported: number; failures: number }> };
const full = tracing.modes['100%']!;
// Both benches: the in-process proxy's recorded = exported, and the Redis+tracing process's
// session spans received by the sink = its sessions logged (each session one span).
const processSpans = m['redis-tracing']!.spans;
const noSpanLost = full.recorded > 0 && full.recorded === full.exported && processSpans !== null && processSpans.exported === processSpans.sessions;
goals.push({
  goal: '2. tracing at 100 % ≤ 1.25× the CPU/session of tracing off, no span lost',
  verdict: verdict(tracingRatio, 1.25) === 'met' && noSpanLost ? 'met' : 'missed',
  figures: `process CPU (Redis mode, all threads) ${formatSummary(tracingRatio, '×')}; in-process proxy thread ${formatNumber(full.cpuRatio)}×; `
    + `spans recorded ${full.recorded}, exported ${full.exported}; Redis+tracing process: session spans ${processSpans?.exported ?? '?'} for ${processSpans?.sessions ?? '?'} sessions`,
  command: `${cpu.command}; ${tracing.command}`,
});
const workerRate = summarize(ratiosPerRun(m['embedded-2-workers']!.ratePerRound, m.embedded!.ratePerRound));
goals.push({
  goal: `3. sessions/s at 1 and 2 workers (this machine: ${os.cpus().length} cores shared with the load generator and neighbours)`,
  verdict: 'measured',
  figures: `1 worker ${formatSummary(m.embedded!.sessionsPerSecond, '/s')}, 2 workers ${formatSummary(m['embedded-2-workers']!.sessionsPerSecond, '/s')} `
    + `(2 ÷ 1: ${formatSummary(workerRate, '×')}); CPU/session ${formatSummary(m.embedded!.cpuUsPerSession, ' µs')} vs ${formatSummary(m['embedded-2-workers']!.cpuUsPerSession, ' µs')}`,
  command: cpu.command,
});
goals.push({
  goal: '4a. Redis CPU per admitted session ≤ 20 µs (one Redis core ≥ 50 000 sessions/s)',
  verdict: verdict(m.redis!.auxCpuUsPerSession, 20),
  figures: `${formatSummary(m.redis!.auxCpuUsPerSession, ' µs')} (redis-server process CPU ÷ sessions, /proc)`,
  command: cpu.command,
});

log(`3/3 push → enforced with ${subscribers} simulated pods and ${policies} policies`);
let scaling: Awaited<ReturnType<typeof measureFleetScaling>> | null = null;
try {
  scaling = await measureFleetScaling({ subscribers, policies, pushes: quick ? 2 : 3, log });
} catch (error) {
  // The goals above are measured already: report this one as failed, not the whole run.
  goals.push({
    goal: `4b. push → enforced p99 with ${subscribers} subscribed pods and ${policies} policies`, verdict: 'missed',
    figures: `not measured: ${(error as Error).message.split('\n')[0]}`,
    command: `scripts/node bench/fleet-scaling.ts --subscribers ${subscribers} --policies ${policies}`,
  });
}
if (scaling !== null) goals.push({
  goal: `4b. push → enforced p99 with ${subscribers} subscribed pods and ${policies} policies`,
  verdict: 'measured',
  figures: `real proxy enforcing p50 ${formatNumber(scaling.enforcedMs.p50)} ms, p99 ${formatNumber(scaling.enforcedMs.p99)} ms; `
    + `every pod holding it p99 ${formatNumber(scaling.allPodsMs.p99)} ms; snapshot ${formatNumber(scaling.snapshotBytes / 1024)} KiB; `
    + `publish call ${formatSummary(scaling.publishCallMs, ' ms')}; Redis CPU per push ${formatSummary(scaling.redisCpuMsPerPush, ' ms')}`,
  command: scaling.command,
});

const table = [
  '| goal | verdict | figures (median (min..max) over rounds) | command |',
  '|---|---|---|---|',
  ...goals.map((g) => `| ${g.goal} | **${g.verdict}** | ${g.figures} | \`${g.command}\` |`),
].join('\n');
const noise = `foreign cores (other processes) up to ${cpu.foreignCoresMax.toFixed(2)} of ${os.cpus().length} during the CPU windows; `
  + `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end`;
const markdown = `# Issue #16 goals (${new Date().toISOString()})\n\n${table}\n\n${noise}\n\n${renderCpuPerSession(cpu)}\n`;
process.stdout.write(`\n${markdown}`);
mkdirSync(values.out, { recursive: true });
writeFileSync(path.join(values.out, 'goals-latest.md'), markdown);
writeFileSync(path.join(values.out, 'goals-latest.json'), `${JSON.stringify({ goals, cpu, tracing, scaling, noise }, null, 2)}\n`);
