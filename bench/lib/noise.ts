// Machine noise indicators: load averages and CPU steal, sampled around each run. The load
// generator also reports, per measurement window, the CPU other tenants used ("foreign cores")
// and the steal; together they say how much to trust a run.
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface CpuCounters {
  readonly total: number;
  readonly steal: number;
  readonly idle: number;
}

export function readCpuCounters(): CpuCounters {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already inside user).
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: values[7] ?? 0, idle: (values[3] ?? 0) + (values[4] ?? 0) };
}

export interface NoiseSample {
  readonly loadAverage: readonly [number, number, number];
  readonly cores: number;
  /** Over the interval since `since`: percent of CPU time stolen by the hypervisor. */
  readonly stealPercent: number | null;
  /** Over the interval: percent of all CPU time busy (ours and everyone else's). */
  readonly busyPercent: number | null;
}

export function sampleNoise(since: CpuCounters | null): { sample: NoiseSample; counters: CpuCounters } {
  const counters = readCpuCounters();
  const [one = 0, five = 0, fifteen = 0] = os.loadavg();
  let stealPercent: number | null = null;
  let busyPercent: number | null = null;
  if (since !== null && counters.total > since.total) {
    const total = counters.total - since.total;
    stealPercent = (100 * (counters.steal - since.steal)) / total;
    busyPercent = (100 * (total - (counters.idle - since.idle))) / total;
  }
  return {
    sample: { loadAverage: [one, five, fifteen], cores: os.availableParallelism(), stealPercent, busyPercent },
    counters,
  };
}
