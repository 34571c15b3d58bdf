// The ratio chart (SVG, no dependencies): one panel per baseline (÷ direct, ÷ Dante), one row per
// metric, one bar per socks4-fleet mode from the 1× line to the median ratio on a log scale, a
// whisker for min..max across runs, and a red tick where the issue puts a target.
import { metrics } from './model.ts';
import type { BenchReport } from './report.ts';
import { fleetModes } from './report.ts';
import { formatNumber } from './stats.ts';
import { targetLabels, type TargetId } from './targets.ts';

const WIDTH = 980;
const LABEL_WIDTH = 300;
const PLOT_WIDTH = 600;
const ROW_HEIGHT = 34;
const BAR_HEIGHT = 8;
const MIN_LOG = -2; // 0.01×
const MAX_LOG = 2; // 100×
const colors: Record<string, string> = {
  'fleet-embedded': '#1f77b4',
  'fleet-redis': '#ff7f0e',
  'fleet-redis-tracing': '#2ca02c',
};

/** Targets drawn on the chart: metric, baseline, threshold. */
const thresholds: readonly { metric: string; base: 'direct' | 'dante'; value: number }[] = [
  { metric: 'handshakeRate', base: 'direct', value: 0.8 },
  { metric: 'handshakeRate', base: 'direct', value: 0.6 },
  { metric: 'handshakeRate', base: 'dante', value: 5 },
  { metric: 'cpuPerSession', base: 'dante', value: 0.2 },
  { metric: 'throughput1', base: 'direct', value: 0.9 },
  { metric: 'cpuPerGiB8', base: 'dante', value: 1 },
];

// biome-ignore lint/suspicious/noShadowRestrictedNames: the deprecated global escape() is never used here
const escape = (s: string): string => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

function xOf(ratio: number): number {
  const clamped = Math.min(MAX_LOG, Math.max(MIN_LOG, Math.log10(ratio)));
  return LABEL_WIDTH + ((clamped - MIN_LOG) / (MAX_LOG - MIN_LOG)) * PLOT_WIDTH;
}

function panel(report: BenchReport, base: 'direct' | 'dante', top: number): { svg: string; height: number } {
  const rows = metrics.filter((m) => base === 'dante' || m.hasDirect);
  const parts: string[] = [];
  const title = base === 'direct' ? 'socks4-fleet ÷ direct (no proxy)' : 'socks4-fleet ÷ Dante';
  parts.push(`<text x="10" y="${top + 18}" font-size="15" font-weight="bold">${escape(title)}</text>`);
  const plotTop = top + 30;
  const plotHeight = rows.length * ROW_HEIGHT;
  for (let e = MIN_LOG; e <= MAX_LOG; e++) {
    const x = xOf(10 ** e);
    parts.push(
      `<line x1="${x}" y1="${plotTop}" x2="${x}" y2="${plotTop + plotHeight}" stroke="${e === 0 ? '#333' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`,
    );
    parts.push(
      `<text x="${x}" y="${plotTop + plotHeight + 14}" font-size="11" text-anchor="middle">${formatNumber(10 ** e)}×</text>`,
    );
  }
  rows.forEach((metric, i) => {
    const y = plotTop + i * ROW_HEIGHT;
    const arrow = metric.better === 'higher' ? '→ better' : '← better';
    parts.push(
      `<text x="10" y="${y + 20}" font-size="12">${escape(metric.label)} <tspan fill="#777">${arrow}</tspan></text>`,
    );
    fleetModes.forEach((mode: TargetId, k) => {
      const cell = report.ratios[metric.id]?.[mode]?.[base] ?? null;
      if (cell === null) return;
      const by = y + 4 + k * (BAR_HEIGHT + 2);
      const x1 = xOf(1);
      const x2 = xOf(cell.median);
      parts.push(
        `<rect x="${Math.min(x1, x2)}" y="${by}" width="${Math.max(1, Math.abs(x2 - x1))}" height="${BAR_HEIGHT}" fill="${colors[mode]}"/>`,
      );
      parts.push(
        `<line x1="${xOf(cell.min)}" y1="${by + BAR_HEIGHT / 2}" x2="${xOf(cell.max)}" y2="${by + BAR_HEIGHT / 2}" stroke="#000" stroke-width="1"/>`,
      );
      parts.push(
        `<text x="${Math.max(x1, x2) + 4}" y="${by + BAR_HEIGHT}" font-size="9">${formatNumber(cell.median)}×</text>`,
      );
    });
    for (const t of thresholds) {
      if (t.metric !== metric.id || t.base !== base) continue;
      const x = xOf(t.value);
      parts.push(
        `<line x1="${x}" y1="${y + 1}" x2="${x}" y2="${y + ROW_HEIGHT - 3}" stroke="#d62728" stroke-width="2" stroke-dasharray="3,2"/>`,
      );
    }
  });
  return { svg: parts.join('\n'), height: 30 + plotHeight + 24 };
}

export function renderChart(report: BenchReport, subtitle: string): string {
  const legendY = 44;
  const parts: string[] = [];
  parts.push(
    `<text x="10" y="20" font-size="16" font-weight="bold">make bench: ratios (median, whisker = min..max across runs; log scale)</text>`,
  );
  parts.push(`<text x="10" y="36" font-size="11" fill="#555">${escape(subtitle)}</text>`);
  fleetModes.forEach((mode, k) => {
    const x = 10 + k * 220;
    const available = report.targets.find((t) => t.id === mode)?.unavailable ?? 'n/a';
    parts.push(`<rect x="${x}" y="${legendY}" width="12" height="12" fill="${colors[mode]}"/>`);
    parts.push(
      `<text x="${x + 16}" y="${legendY + 11}" font-size="12">${escape(targetLabels[mode])}${available === null ? '' : ` (${escape(available)})`}</text>`,
    );
  });
  parts.push(
    `<line x1="700" y1="${legendY + 6}" x2="720" y2="${legendY + 6}" stroke="#d62728" stroke-width="2" stroke-dasharray="3,2"/><text x="724" y="${legendY + 11}" font-size="12">target</text>`,
  );
  let top = legendY + 24;
  for (const base of ['direct', 'dante'] as const) {
    const p = panel(report, base, top);
    parts.push(p.svg);
    top += p.height + 10;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${top}" viewBox="0 0 ${WIDTH} ${top}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}
