// Summaries of repeated runs. Every figure is reported as the median of the runs with its min..max,
// and every ratio is taken inside one run (both sides measured minutes apart on the same machine,
// under the same neighbours) before its median is taken across runs.

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Null when no run produced a finite value. */
export function summarize(values: readonly (number | null)[]): Summary | null {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (finite.length === 0) return null;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), runs: finite.length };
}

/** Per-run ratios a[i] / b[i]; a run missing either side gives null. */
export function ratiosPerRun(a: readonly (number | null)[], b: readonly (number | null)[]): (number | null)[] {
  return a.map((value, i) => {
    const base = b[i];
    if (value === null || base === null || base === undefined || base === 0) return null;
    return value / base;
  });
}

/** `12 345`, `1.23`, `0.0123`: three significant digits at most, thin groups for thousands. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US').replaceAll(',', ' ');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return '0';
  return value.toPrecision(2);
}

export function formatSummary(s: Summary | null, suffix = ''): string {
  if (s === null) return 'n/a';
  if (s.runs === 1 || s.min === s.max) return `${formatNumber(s.median)}${suffix}`;
  return `${formatNumber(s.median)}${suffix} (${formatNumber(s.min)}..${formatNumber(s.max)})`;
}
