// The benchmark's arithmetic (pure): medians, ratios taken inside each run, and target verdicts.
// The benchmark itself (`make bench`) is never part of `make test`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HandshakeResult, IdleResult } from '../../bench/lib/loadgen.ts';
import type { RunRecord } from '../../bench/lib/model.ts';
import { buildReport, renderMarkdown, type TargetInfo } from '../../bench/lib/report.ts';
import { formatSummary, median, ratiosPerRun, summarize } from '../../bench/lib/stats.ts';
import { renderChart } from '../../bench/lib/chart.ts';

const cpu = {
  proxyCpuSeconds: 1,
  auxCpuSeconds: 0,
  loadgenCores: 0.5,
  proxyCores: 1,
  foreignCores: 0,
  stealPercent: 0,
};

function handshake(cyclesPerSecond: number, cpuUs: number): HandshakeResult {
  return {
    cycles: cyclesPerSecond * 3,
    errors: 0,
    windowSeconds: 3,
    cyclesPerSecond,
    handshakeP50Us: 1000,
    handshakeP99Us: 2000,
    cycleP50Us: 1500,
    cycleP99Us: 3000,
    proxyCpuUsPerSession: cpuUs,
    cpu,
  };
}

function idle(bytesPerSession: number): IdleResult {
  const sample = { rssKiB: 0, pssKiB: 0, processes: 1 };
  return {
    sessions: 100,
    opened: 100,
    errors: 0,
    openSeconds: 1,
    before: sample,
    halfHeld: sample,
    held: sample,
    afterClose: sample,
    rssBytesPerSession: bytesPerSession,
    pssBytesPerSession: bytesPerSession * 2,
    marginalRssBytesPerSession: bytesPerSession,
    marginalPssBytesPerSession: bytesPerSession,
  };
}

const noise = { loadAverage: [1, 1, 1] as const, cores: 2, stealPercent: 0, busyPercent: 50 };

function run(n: number, directRate: number, danteRate: number, fleetRate: number): RunRecord {
  return {
    run: n,
    order: ['direct', 'dante', 'fleet-embedded'],
    noiseStart: noise,
    noiseEnd: noise,
    targets: {
      direct: { handshake: handshake(directRate, 0) },
      dante: { handshake: handshake(danteRate, 400), idle: idle(300 * 1024) },
      'fleet-embedded': { handshake: handshake(fleetRate, 100), idle: idle(4 * 1024) },
    },
    policyEngine: [
      {
        shape: 'tenants',
        rules: 10_000,
        policies: 101,
        compileMs: 100,
        decisionsPerSecond: 5e5,
        decisionsPerCpuSecond: 2e6,
        allowedFraction: 0.7,
        index: 'source',
      },
    ],
    failures: [],
  };
}

const targets: TargetInfo[] = [
  { id: 'direct', unavailable: null, memoryMetric: null },
  { id: 'dante', unavailable: null, memoryMetric: 'pss' },
  { id: 'fleet-embedded', unavailable: null, memoryMetric: 'rss' },
  { id: 'fleet-redis', unavailable: 'n/a (not built yet)', memoryMetric: null },
];

describe('bench statistics', () => {
  it('takes medians of odd and even counts and skips missing runs', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    assert.deepEqual(summarize([null, 5, 1, Number.NaN, 3]), { median: 3, min: 1, max: 5, runs: 3 });
    assert.equal(summarize([null, null]), null);
  });

  it('divides run by run, not medians by medians', () => {
    assert.deepEqual(ratiosPerRun([10, 30, null], [5, 10, 4]), [2, 3, null]);
    // Median of per-run ratios (2, 3, 4) is 3; the ratio of medians (20/10) would be 2.
    const ratios = ratiosPerRun([10, 30, 20], [5, 10, 5]);
    assert.equal(summarize(ratios)?.median, 3);
  });

  it('formats a summary with its spread', () => {
    assert.equal(formatSummary({ median: 1234.4, min: 1000, max: 2000, runs: 3 }), '1 234 (1 000..2 000)');
    assert.equal(formatSummary({ median: 0.5, min: 0.5, max: 0.5, runs: 3 }, '×'), '0.50×');
    assert.equal(formatSummary(null), 'n/a');
  });
});

describe('bench report', () => {
  const runs = [run(1, 1000, 500, 400), run(2, 1000, 400, 500), run(3, 2000, 500, 1000)];
  const report = buildReport(runs, targets);

  it('summarizes ratios to direct and to Dante per run', () => {
    const rate = report.ratios.handshakeRate?.['fleet-embedded'];
    assert.deepEqual(rate?.direct, { median: 0.5, min: 0.4, max: 0.5, runs: 3 });
    assert.deepEqual(rate?.dante, { median: 1.25, min: 0.8, max: 2, runs: 3 });
    // CPU has no direct figure; memory per idle session uses RSS for one process, PSS for Dante.
    assert.equal(report.ratios.cpuPerSession?.['fleet-embedded']?.direct, null);
    assert.equal(report.values.idleMemory?.dante?.median, 600);
    assert.equal(report.values.idleMemory?.['fleet-embedded']?.median, 4);
  });

  it('judges targets on medians and leaves unbuilt modes n/a', () => {
    const verdict = (fragment: string): boolean | null | undefined =>
      report.goals.find((g) => g.text.includes(fragment))?.met;
    assert.equal(verdict('handshake cycles/s, embedded ÷ direct'), false);
    assert.equal(verdict('proxy CPU per session, embedded ÷ Dante'), false); // 100/400 = 0.25 > 0.2
    assert.equal(verdict('RSS per idle session, embedded'), true);
    assert.equal(verdict('policy engine, 10 000 rules'), true);
    assert.equal(verdict('handshake cycles/s, Redis ÷ direct'), null);
    assert.equal(verdict('Redis+tracing ÷ Redis'), null);
  });

  it('renders the table and a well-formed chart', () => {
    const markdown = renderMarkdown(report, runs);
    assert.match(
      markdown,
      /\| handshake cycles\/s \(50 clients\) \| 1 000 \(1 000\.\.2 000\) \| 500 \(400\.\.500\) \| 500 \(400\.\.1 000\) \| n\/a \(not built yet\) \|/,
    );
    assert.match(
      markdown,
      /\| handshake cycles\/s, embedded ÷ direct \| ≥ 0\.8 \| 0\.50 \(0\.40\.\.0\.50\) \| missed \|/,
    );
    const svg = renderChart(report, 'test');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // The background, three legend swatches, then one bar per ratio of a fleet mode.
    assert.equal(svg.match(/<rect /g)?.length, 1 + 3 + countBars(report));
    assert.match(svg, /<\/svg>\n$/);
  });
});

/** Bars drawn: one per fleet mode, metric and baseline with a ratio. */
function countBars(report: ReturnType<typeof buildReport>): number {
  let bars = 0;
  for (const byTarget of Object.values(report.ratios)) {
    for (const [id, cell] of Object.entries(byTarget)) {
      if (!id.startsWith('fleet-')) continue;
      if (cell.direct !== null) bars++;
      if (cell.dante !== null) bars++;
    }
  }
  return bars;
}
