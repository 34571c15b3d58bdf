// The fleet's scaling curve as an SVG (no dependencies), from measured runs: admissions per second
// and Redis CPU per session for a standalone Redis and clusters of K masters (bench/admission.ts),
// the Redis shards a given session rate needs at that cost, and push → each pod holding the new
// rules with the whole document vs chunks (bench/fleet-scaling.ts).
import type { AdmissionRun } from '../admission.ts';
import type { FleetScalingReport } from '../fleet-scaling.ts';
import { formatNumber } from './stats.ts';

/** A Redis core planned at this share, as in the README's capacity table. */
export const PLANNED_CORE_SHARE = 0.7;
const WIDTH = 980;
const LEFT = 230;
const PLOT = 330;

const escapeXml = (s: string): string => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const text = (x: number, y: number, s: string, extra = 'font-size="12"'): string =>
  `<text x="${x.toFixed(1)}" y="${y}" ${extra}>${escapeXml(s)}</text>`;

/** Shards needed for `rate` sessions/s when the busiest shard spends `usPerSession` per session. */
export function shardsFor(rate: number, usPerSession: number): number {
  return Math.max(1, Math.ceil((rate * usPerSession) / (1e6 * PLANNED_CORE_SHARE)));
}

function bars(
  title: string,
  top: number,
  rows: { label: string; value: number; note: string; color: string }[],
  unit: string,
  log: boolean,
): { svg: string; height: number } {
  const max = Math.max(...rows.map((r) => r.value), 1);
  const scale = (v: number): number =>
    log ? (Math.log10(Math.max(v, 1)) / Math.log10(max * 1.2)) * PLOT : (v / (max * 1.1)) * PLOT;
  const parts = [text(10, top + 16, title, 'font-size="14" font-weight="bold"')];
  rows.forEach((r, i) => {
    const y = top + 32 + i * 24;
    parts.push(text(10, y + 12, r.label));
    parts.push(
      `<rect x="${LEFT}" y="${y}" width="${Math.max(1, scale(r.value)).toFixed(1)}" height="14" fill="${r.color}"/>`,
    );
    parts.push(
      text(
        LEFT + scale(r.value) + 6,
        y + 12,
        `${Number.isInteger(r.value) && r.value < 1000 ? String(r.value) : formatNumber(r.value)}${unit}  ${r.note}`,
      ),
    );
  });
  return { svg: parts.join('\n'), height: 40 + rows.length * 24 };
}

export function renderScalingChart(
  admission: readonly AdmissionRun[],
  pushes: FleetScalingReport | null,
  when: string,
): string {
  const panels: string[] = [];
  let top = 10;
  const add = (p: { svg: string; height: number }): void => {
    panels.push(p.svg);
    top += p.height + 16;
  };
  const current = admission.filter((r) => r.variant !== 'baseline');
  add(
    bars(
      'Admissions: sessions/s (the load generator shares the 2 cores)',
      top,
      current.map((r) => ({
        label: r.shards === 0 ? 'standalone Redis' : `cluster, K = ${r.shards}`,
        value: r.sessionsPerSecond,
        note: `Redis ${formatNumber(r.redisCpuUsPerSession)} µs/session${r.perShard.length > 1 ? ` = ${r.perShard.map((s) => formatNumber(s.cpuUsPerSession)).join(' + ')} by shard` : ''}`,
        color: '#1f77b4',
      })),
      '/s',
      false,
    ),
  );
  // A shard of K admits 1/K of the sessions at K × its CPU per fleet session, i.e. the cluster's
  // total per session: the widest cluster measured is the (conservative) cost per shard.
  const widest = [...current].sort((a, b) => b.shards - a.shards)[0];
  if (widest !== undefined) {
    const cost = widest.redisCpuUsPerSession;
    add(
      bars(
        `Redis shards needed at ${formatNumber(cost)} µs per session a shard admits (measured at K = ${widest.shards}), cores at ${PLANNED_CORE_SHARE * 100} %`,
        top,
        [1_000, 10_000, 50_000, 100_000, 200_000].map((rate) => ({
          label: `${formatNumber(rate)} sessions/s`,
          value: shardsFor(rate, cost),
          note: 'shards',
          color: '#2ca02c',
        })),
        '',
        false,
      ),
    );
  }
  if (pushes !== null) {
    const rows = pushes.modes.flatMap((m) =>
      (['p50', 'p99'] as const).map((p) => ({
        label: `${m.mode === 'document' ? 'whole document' : 'chunks'}, each pod ${p}`,
        value: m.perPodMs[p],
        note: p === 'p99' ? `(real proxy p99 ${formatNumber(m.enforcedMs.p99)} ms)` : '',
        color: m.mode === 'document' ? '#d62728' : '#ff7f0e',
      })),
    );
    add(
      bars(
        `Push → each pod holds it, ms (log), ${pushes.subscribers} pods, ${pushes.policies} policies`,
        top,
        rows,
        ' ms',
        true,
      ),
    );
  }
  panels.push(
    text(
      10,
      top + 4,
      `measured ${when}; scripts/node bench/admission.ts, bench/fleet-scaling.ts; bench/scaling-chart.ts draws this`,
      'font-size="11" fill="#666"',
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${top + 20}" font-family="sans-serif">\n<title>socks4-fleet scaling: admissions, Redis CPU per session, push to enforced</title>\n<rect width="100%" height="100%" fill="white"/>\n${panels.join('\n')}\n</svg>\n`;
}
