// Proxy CPU per session against the Node floor (bench/floor-relay.ts), the figure issue #16's
// goals are ratios of. Each round runs the Go load generator's handshake cycle (N clients:
// CONNECT → 64-byte echo → close) against every mode in turn, order rotated per round, and reads
// the server's CPU (user + system, /proc, children included) over the window. Ratios are taken
// inside a round, then the median (min..max) over rounds. socks4-fleet runs as users run it:
// through the launcher, default log level (info: one line per session) into a file, metrics on.
//
//   scripts/node bench/cpu-per-session.ts [--rounds 3] [--seconds 3] [--clients 50]
//        [--modes floor,embedded,redis,redis-tracing,embedded-2-workers] [--workers 1] [--json]
//   SOCKS4_BENCH_BASELINE=DIR ... --modes floor,embedded-baseline,embedded,redis-baseline,redis
//        before/after: DIR is another checkout (git archive REV | tar -x -C DIR; node_modules linked)
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureLoadgen, runLoadgen, type HandshakeResult } from './lib/loadgen.ts';
import { formatSummary, ratiosPerRun, summarize, type Summary } from './lib/stats.ts';
import { startEmbedded, startFloor, startRedisMode, type FleetOptions, type Target } from './lib/targets.ts';

export const Mode = {
  Floor: 'floor',
  Embedded: 'embedded',
  Redis: 'redis',
  RedisTracing: 'redis-tracing',
  Embedded2Workers: 'embedded-2-workers',
  // The same modes from another checkout (env SOCKS4_BENCH_BASELINE=DIR): before/after in one run.
  EmbeddedBaseline: 'embedded-baseline',
  RedisBaseline: 'redis-baseline',
} as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

export interface ModeFigures {
  cpuUsPerSession: Summary | null;
  /** The same, per round (for ratios between modes taken inside a round). */
  cpuPerRound: number[];
  ratePerRound: number[];
  /** Helper processes' CPU (redis-server) per session: what Redis spends admitting one. */
  auxCpuUsPerSession: Summary | null;
  sessionsPerSecond: Summary | null;
  /** CPU per session ÷ the floor's, per round. */
  ratioToFloor: Summary | null;
  proxyCores: Summary | null;
  errors: number;
  /** Session log lines written ÷ sessions served, when logs were on (1 = none lost). */
  logLines: number | null;
  /**
   * Tracing modes: session spans the OTLP sink received against sessions the proxy logged over its
   * whole life (warm-up and probe included), read after it stopped and flushed. Equal: none lost.
   */
  spans: { exported: number; sessions: number } | null;
}

export interface CpuPerSessionReport {
  command: string;
  rounds: number;
  seconds: number;
  clients: number;
  modes: Partial<Record<Mode, ModeFigures>>;
  /** The highest foreign (other processes') CPU in any window, in cores. */
  foreignCoresMax: number;
}

const starters: Record<Mode, (o: FleetOptions) => Promise<Target>> = {
  floor: () => startFloor(),
  embedded: (o) => startEmbedded(o),
  redis: (o) => startRedisMode(false, o),
  'redis-tracing': (o) => startRedisMode(true, { ...o, probeTracing: false }),
  'embedded-2-workers': (o) => startEmbedded({ ...o, extraArgs: [...(o.extraArgs ?? []), '--workers', '2'] }),
  'embedded-baseline': (o) => startEmbedded({ ...o, checkout: baseline() }),
  'redis-baseline': (o) => startRedisMode(false, { ...o, checkout: baseline() }),
};

function baseline(): string {
  const dir = process.env.SOCKS4_BENCH_BASELINE;
  if (dir === undefined)
    throw new Error('the *-baseline modes need SOCKS4_BENCH_BASELINE=DIR, a checkout to compare with');
  return dir;
}

export async function measureCpuPerSession(options: {
  rounds: number;
  seconds: number;
  clients: number;
  modes: readonly Mode[];
  workers?: number;
  log?: (line: string) => void;
}): Promise<CpuPerSessionReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  ensureLoadgen();
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-bench-cpu-'));
  const targets = new Map<Mode, { target: Target; logFile: string | null }>();
  const samples = new Map<Mode, HandshakeResult[]>();
  let foreign = 0;
  try {
    for (const mode of options.modes) {
      const logFile = mode === Mode.Floor ? null : path.join(dir, `${mode}.log`);
      const fd = logFile === null ? undefined : openSync(logFile, 'a');
      const extraArgs =
        options.workers !== undefined && mode !== Mode.Floor ? ['--workers', String(options.workers)] : [];
      const target = await starters[mode]({
        logLevel: 'info',
        ...(fd === undefined ? {} : { stdoutFd: fd }),
        extraArgs,
      });
      if (fd !== undefined) closeSync(fd);
      if (target.unavailable !== null) throw new Error(`${mode}: ${target.unavailable}`);
      targets.set(mode, { target, logFile });
      samples.set(mode, []);
    }
    for (let round = 0; round < options.rounds; round++) {
      const order = options.modes.map((_, i) => options.modes[(i + round) % options.modes.length] as Mode);
      for (const mode of order) {
        const { target } = targets.get(mode)!;
        const result = await runLoadgen<HandshakeResult>('handshake', target.loadgen, {
          clients: options.clients,
          duration: `${options.seconds}s`,
          warmup: '500ms',
          'max-cycles': 2_000_000,
        });
        samples.get(mode)!.push(result);
        foreign = Math.max(foreign, result.cpu.foreignCores);
        log(
          `  round ${round + 1} ${mode.padEnd(14)} ${result.proxyCpuUsPerSession.toFixed(0)} µs/session, ` +
            `${result.cyclesPerSecond.toFixed(0)} sessions/s, proxy ${result.cpu.proxyCores.toFixed(2)} cores, ` +
            `foreign ${result.cpu.foreignCores.toFixed(2)}, errors ${result.errors}`,
        );
      }
    }
  } finally {
    for (const { target } of targets.values()) await target.stop();
  }
  const exportedSpans = (mode: Mode): number | null => {
    const otlp = targets.get(mode)?.target.details().otlp as { sessionSpans?: number } | undefined;
    return otlp?.sessionSpans ?? null;
  };
  const floorCpu = (samples.get(Mode.Floor) ?? []).map((r) => r.proxyCpuUsPerSession);
  const modes: Partial<Record<Mode, ModeFigures>> = {};
  for (const mode of options.modes) {
    const rs = samples.get(mode)!;
    const cpu = rs.map((r) => r.proxyCpuUsPerSession);
    const logFile = targets.get(mode)?.logFile ?? null;
    modes[mode] = {
      cpuUsPerSession: summarize(cpu),
      cpuPerRound: cpu,
      ratePerRound: rs.map((r) => r.cyclesPerSecond),
      auxCpuUsPerSession:
        mode === Mode.Redis || mode === Mode.RedisTracing || mode === Mode.RedisBaseline
          ? summarize(rs.map((r) => (r.cycles > 0 ? (r.cpu.auxCpuSeconds * 1e6) / r.cycles : null)))
          : null,
      sessionsPerSecond: summarize(rs.map((r) => r.cyclesPerSecond)),
      ratioToFloor: floorCpu.length === 0 ? null : summarize(ratiosPerRun(cpu, floorCpu)),
      proxyCores: summarize(rs.map((r) => r.cpu.proxyCores)),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      logLines: logFile === null ? null : countSessionLines(logFile),
      spans:
        exportedSpans(mode) === null || logFile === null
          ? null
          : { exported: exportedSpans(mode)!, sessions: countSessionLines(logFile, true) },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    command: `scripts/node bench/cpu-per-session.ts --rounds ${options.rounds} --seconds ${options.seconds} --clients ${options.clients} --modes ${options.modes.join(',')}${options.workers === undefined ? '' : ` --workers ${options.workers}`}`,
    rounds: options.rounds,
    seconds: options.seconds,
    clients: options.clients,
    modes,
    foreignCoresMax: foreign,
  };
}

/** Granted sessions' lines; with `all`, every session's (refused and cut by the drain too). */
function countSessionLines(file: string, all = false): number {
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.includes('"msg":"session closed"') || (all && /"msg":"session (refused|cut by the drain)"/.test(line)))
      n++;
  }
  return n;
}

export function renderCpuPerSession(report: CpuPerSessionReport): string {
  const lines = [
    `${report.command}`,
    '',
    '| mode | CPU µs/session | ÷ floor | sessions/s | proxy cores | Redis CPU µs/session | session log lines | errors |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [mode, f] of Object.entries(report.modes)) {
    lines.push(
      `| ${mode} | ${formatSummary(f.cpuUsPerSession)} | ${formatSummary(f.ratioToFloor, '×')} | ${formatSummary(f.sessionsPerSecond)} | ` +
        `${formatSummary(f.proxyCores)} | ${f.auxCpuUsPerSession === null ? '—' : formatSummary(f.auxCpuUsPerSession)} | ${f.logLines ?? '—'} | ${f.errors} |`,
    );
  }
  for (const [mode, f] of Object.entries(report.modes)) {
    if (f.spans !== null)
      lines.push(
        '',
        `${mode}: session spans exported ${f.spans.exported} for ${f.spans.sessions} sessions logged${f.spans.exported === f.spans.sessions ? ' (none lost)' : ' (SPANS LOST)'}`,
      );
  }
  lines.push('', `foreign cores (other processes, max over windows): ${report.foreignCoresMax.toFixed(2)}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      clients: { type: 'string', default: '50' },
      modes: { type: 'string', default: 'floor,embedded,redis' },
      workers: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const modes = values.modes.split(',') as Mode[];
  for (const m of modes)
    if (!Object.values(Mode).includes(m))
      throw new Error(`--modes: unknown mode ${m} (${Object.values(Mode).join(', ')})`);
  const report = await measureCpuPerSession({
    rounds: Number(values.rounds),
    seconds: Number(values.seconds),
    clients: Number(values.clients),
    modes,
    ...(values.workers === undefined ? {} : { workers: Number(values.workers) }),
  });
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${renderCpuPerSession(report)}\n`);
}
