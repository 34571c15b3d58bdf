// From runs to the report: medians with min..max, ratios taken inside each run, the issue's
// targets judged on those ratios, and the Markdown tables `make bench` prints.
import { metrics, type Metric, type PolicyEngineRow, type RunRecord } from './model.ts';
import { formatNumber, formatSummary, ratiosPerRun, summarize, type Summary } from './stats.ts';
import { targetLabels, TargetId, type Target } from './targets.ts';

export interface TargetInfo {
  readonly id: TargetId;
  readonly unavailable: string | null;
  readonly memoryMetric: 'rss' | 'pss' | null;
}

export interface RatioCell {
  readonly direct: Summary | null;
  readonly dante: Summary | null;
}

export interface PolicyEngineSummary {
  readonly shape: string;
  readonly rules: number;
  readonly policies: number;
  readonly index: string;
  readonly compileMs: Summary | null;
  readonly decisionsPerSecond: Summary | null;
  readonly decisionsPerCpuSecond: Summary | null;
}

export interface Goal {
  readonly text: string;
  readonly threshold: string;
  readonly measured: Summary | null;
  /** Null when it could not be measured (a mode not built yet). */
  readonly met: boolean | null;
}

export interface BenchReport {
  readonly targets: readonly TargetInfo[];
  readonly values: Record<string, Partial<Record<TargetId, Summary | null>>>;
  readonly ratios: Record<string, Partial<Record<TargetId, RatioCell>>>;
  readonly policyEngine: readonly PolicyEngineSummary[];
  readonly goals: readonly Goal[];
}

export const fleetModes = [TargetId.Embedded, TargetId.Redis, TargetId.RedisTracing] as const;

export function toTargetInfo(t: Target): TargetInfo {
  return { id: t.id, unavailable: t.unavailable, memoryMetric: t.memoryMetric };
}

/** One value per run for a metric and target (null where a run has none). */
export function series(runs: readonly RunRecord[], metric: Metric, target: TargetInfo): (number | null)[] {
  return runs.map((run) => {
    const r = run.targets[target.id];
    return r === undefined ? null : metric.value(r, target.memoryMetric);
  });
}

function policySeries(
  runs: readonly RunRecord[],
  pick: (row: PolicyEngineRow) => boolean,
  field: (row: PolicyEngineRow) => number,
): (number | null)[] {
  return runs.map((run) => {
    const row = run.policyEngine?.find(pick);
    return row === undefined ? null : field(row);
  });
}

export function buildReport(runs: readonly RunRecord[], targets: readonly TargetInfo[]): BenchReport {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const values: BenchReport['values'] = {};
  const ratios: BenchReport['ratios'] = {};
  const perRun = new Map<string, (number | null)[]>();
  for (const metric of metrics) {
    values[metric.id] = {};
    ratios[metric.id] = {};
    for (const t of targets) {
      const s = series(runs, metric, t);
      perRun.set(`${metric.id}/${t.id}`, s);
      values[metric.id]![t.id] = t.unavailable === null ? summarize(s) : null;
    }
    const direct = perRun.get(`${metric.id}/${TargetId.Direct}`) ?? [];
    const dante = perRun.get(`${metric.id}/${TargetId.Dante}`) ?? [];
    for (const t of targets) {
      if (t.id === TargetId.Direct) continue;
      const s = perRun.get(`${metric.id}/${t.id}`) ?? [];
      ratios[metric.id]![t.id] = {
        direct: metric.hasDirect ? summarize(ratiosPerRun(s, direct)) : null,
        dante: t.id === TargetId.Dante ? null : summarize(ratiosPerRun(s, dante)),
      };
    }
  }

  const shapes = new Map<string, PolicyEngineRow>();
  for (const run of runs) for (const row of run.policyEngine ?? []) shapes.set(`${row.shape}/${row.rules}`, row);
  const policyEngine = [...shapes.values()].map((row): PolicyEngineSummary => {
    const pick = (r: PolicyEngineRow): boolean => r.shape === row.shape && r.rules === row.rules;
    return {
      shape: row.shape,
      rules: row.rules,
      policies: row.policies,
      index: row.index,
      compileMs: summarize(policySeries(runs, pick, (r) => r.compileMs)),
      decisionsPerSecond: summarize(policySeries(runs, pick, (r) => r.decisionsPerSecond)),
      decisionsPerCpuSecond: summarize(policySeries(runs, pick, (r) => r.decisionsPerCpuSecond)),
    };
  });

  const ratio = (metricId: string, target: TargetId, base: 'direct' | 'dante'): Summary | null =>
    byId.get(target)?.unavailable === null ? (ratios[metricId]?.[target]?.[base] ?? null) : null;
  const value = (metricId: string, target: TargetId): Summary | null => values[metricId]?.[target] ?? null;
  const judge = (s: Summary | null, ok: (x: number) => boolean): boolean | null => (s === null ? null : ok(s.median));
  const goals: Goal[] = [];
  const goal = (text: string, threshold: string, measured: Summary | null, ok: (x: number) => boolean): void => {
    goals.push({ text, threshold, measured, met: judge(measured, ok) });
  };
  goal(
    'handshake cycles/s, embedded ÷ direct',
    '≥ 0.8',
    ratio('handshakeRate', TargetId.Embedded, 'direct'),
    (x) => x >= 0.8,
  );
  goal(
    'handshake cycles/s, Redis ÷ direct',
    '≥ 0.6',
    ratio('handshakeRate', TargetId.Redis, 'direct'),
    (x) => x >= 0.6,
  );
  goal(
    'handshake cycles/s, embedded ÷ Dante',
    '≥ 5',
    ratio('handshakeRate', TargetId.Embedded, 'dante'),
    (x) => x >= 5,
  );
  goal('handshake cycles/s, Redis ÷ Dante', '≥ 5', ratio('handshakeRate', TargetId.Redis, 'dante'), (x) => x >= 5);
  goal(
    'proxy CPU per session, embedded ÷ Dante',
    '≤ 0.2',
    ratio('cpuPerSession', TargetId.Embedded, 'dante'),
    (x) => x <= 0.2,
  );
  goal(
    'proxy CPU per session, Redis ÷ Dante',
    '≤ 0.2',
    ratio('cpuPerSession', TargetId.Redis, 'dante'),
    (x) => x <= 0.2,
  );
  goal(
    '1-session throughput, embedded ÷ direct',
    '≥ 0.9',
    ratio('throughput1', TargetId.Embedded, 'direct'),
    (x) => x >= 0.9,
  );
  goal(
    '8-session proxy CPU per GiB, embedded ÷ Dante',
    '≤ 1',
    ratio('cpuPerGiB8', TargetId.Embedded, 'dante'),
    (x) => x <= 1,
  );
  goal(
    'RSS per idle session, embedded (KiB; growth ÷ sessions)',
    '≤ 8',
    value('idleMemory', TargetId.Embedded),
    (x) => x <= 8,
  );
  goal(
    'RSS per idle session, Redis (KiB; growth ÷ sessions)',
    '≤ 8',
    value('idleMemory', TargetId.Redis),
    (x) => x <= 8,
  );
  const tracing =
    byId.get(TargetId.RedisTracing)?.unavailable === null && byId.get(TargetId.Redis)?.unavailable === null
      ? summarize(
          ratiosPerRun(
            perRun.get(`handshakeRate/${TargetId.RedisTracing}`) ?? [],
            perRun.get(`handshakeRate/${TargetId.Redis}`) ?? [],
          ),
        )
      : null;
  goal('handshake cycles/s, Redis+tracing ÷ Redis (tracing cost ≤ 10 %)', '≥ 0.9', tracing, (x) => x >= 0.9);
  const tenK = policyEngine.find((p) => p.shape === 'tenants' && p.rules === 10_000);
  goal(
    'policy engine, 10 000 rules: decisions per CPU-second',
    '≥ 1 000 000',
    tenK?.decisionsPerCpuSecond ?? null,
    (x) => x >= 1e6,
  );
  return { targets, values, ratios, policyEngine, goals };
}

const label = (id: TargetId): string => targetLabels[id];

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(report: BenchReport, runs: readonly RunRecord[]): string {
  const available = report.targets.filter((t) => t.unavailable === null);
  const out: string[] = [];
  out.push(
    `Medians of ${runs.length} run(s), (min..max) across runs. Ratios are taken inside each run, then summarized.`,
  );
  out.push('');
  out.push('### Figures');
  out.push(
    markdownTable(
      ['metric', ...report.targets.map((t) => label(t.id))],
      metrics.map((m) => [
        m.label,
        ...report.targets.map((t) => {
          if (t.unavailable !== null) return t.unavailable;
          if (t.id === TargetId.Direct && !m.hasDirect) return '—';
          return formatSummary(report.values[m.id]?.[t.id] ?? null);
        }),
      ]),
    ),
  );
  out.push('');
  out.push(
    'Memory per idle session: RSS growth of the one process (socks4-fleet), PSS growth summed over the process tree (Dante forks), each in a freshly started server; "per idle session" divides the growth from empty to all sessions held by their number, "per added idle session" the growth from half to all held by the second half (one-time growth such as heap sizing or a pre-forked pool left out).',
  );
  out.push('');
  out.push('### Ratios (÷ direct, ÷ Dante; higher-is-better and lower-is-better as the metric says)');
  const ratioTargets = report.targets.filter((t) => t.id !== TargetId.Direct);
  const header = ['metric'];
  for (const t of ratioTargets) {
    header.push(`${label(t.id)} ÷ direct`);
    if (t.id !== TargetId.Dante) header.push(`${label(t.id)} ÷ Dante`);
  }
  out.push(
    markdownTable(
      header,
      metrics.map((m) => {
        const row = [`${m.label} (${m.better} is better)`];
        for (const t of ratioTargets) {
          const cell = report.ratios[m.id]?.[t.id];
          const na = t.unavailable === null ? null : 'n/a';
          row.push(na ?? (m.hasDirect ? formatSummary(cell?.direct ?? null, '×') : '—'));
          if (t.id !== TargetId.Dante) row.push(na ?? formatSummary(cell?.dante ?? null, '×'));
        }
        return row;
      }),
    ),
  );
  out.push('');
  if (report.policyEngine.length > 0) {
    out.push('### Policy engine alone');
    out.push(
      markdownTable(
        [
          'rules',
          'shape',
          'policies',
          'index',
          'compile (ms)',
          'decisions per CPU-second',
          'decisions per wall-second',
        ],
        report.policyEngine.map((p) => [
          p.rules.toLocaleString('en-US').replaceAll(',', ' '),
          p.shape,
          String(p.policies),
          p.index,
          formatSummary(p.compileMs),
          formatSummary(p.decisionsPerCpuSecond),
          formatSummary(p.decisionsPerSecond),
        ]),
      ),
    );
    out.push('');
  }
  out.push('### Targets');
  out.push(
    markdownTable(
      ['target', 'needed', 'measured', 'verdict'],
      report.goals.map((g) => [
        g.text,
        g.threshold,
        formatSummary(g.measured),
        g.met === null ? 'n/a' : g.met ? 'met' : 'missed',
      ]),
    ),
  );
  out.push('');
  out.push('### Noise');
  out.push(
    markdownTable(
      [
        'run',
        'order',
        'load avg at start',
        'load avg at end',
        'busy % (all CPUs)',
        'steal %',
        'foreign cores (max window)',
        'load generator cores (max window)',
        'errors',
      ],
      runs.map((run) => {
        const windows = Object.values(run.targets)
          .flatMap((r) => [r.handshake?.cpu, r.throughput1?.cpu, r.throughput8?.cpu])
          .filter((c) => c !== undefined);
        const errors = Object.values(run.targets).reduce(
          (n, r) =>
            n +
            (r.handshake?.errors ?? 0) +
            (r.throughput1?.errors ?? 0) +
            (r.throughput8?.errors ?? 0) +
            (r.idle?.errors ?? 0),
          0,
        );
        const la = (s: readonly number[]): string => s.map((x) => x.toFixed(2)).join(' ');
        return [
          String(run.run),
          run.order.map(label).join(' → '),
          la(run.noiseStart.loadAverage),
          la(run.noiseEnd.loadAverage),
          run.noiseEnd.busyPercent === null ? '?' : run.noiseEnd.busyPercent.toFixed(0),
          run.noiseEnd.stealPercent === null ? '?' : run.noiseEnd.stealPercent.toFixed(2),
          formatNumber(Math.max(0, ...windows.map((c) => c.foreignCores))),
          formatNumber(Math.max(0, ...windows.map((c) => c.loadgenCores))),
          String(errors),
        ];
      }),
    ),
  );
  for (const t of report.targets)
    if (t.unavailable !== null && !available.includes(t)) out.push(`\n${label(t.id)}: ${t.unavailable}`);
  const failures = runs.flatMap((run) => run.failures);
  if (failures.length > 0)
    out.push(`\nFailed measurements (left out of the figures):\n${failures.map((f) => `- ${f}`).join('\n')}`);
  return out.join('\n');
}
