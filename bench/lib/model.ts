// The shape of one benchmark run and the figures derived from it. Everything the report, the
// chart and the JSON say comes from these definitions.
import type { HandshakeResult, IdleResult, ThroughputResult } from './loadgen.ts';
import type { NoiseSample } from './noise.ts';
import type { TargetId } from './targets.ts';

export interface TargetRun {
  handshake?: HandshakeResult;
  /** One client at a time: latency without queueing behind other clients. */
  handshakeSingle?: HandshakeResult;
  throughput1?: ThroughputResult;
  throughput8?: ThroughputResult;
  idle?: IdleResult;
}

export interface PolicyEngineRow {
  shape: 'tenants' | 'globs-only';
  rules: number;
  policies: number;
  compileMs: number;
  decisionsPerSecond: number;
  decisionsPerCpuSecond: number;
  allowedFraction: number;
  index: string;
}

export interface RunRecord {
  run: number;
  /** The order targets were measured in, per test (rotated every run). */
  order: TargetId[];
  noiseStart: NoiseSample;
  noiseEnd: NoiseSample;
  targets: Partial<Record<TargetId, TargetRun>>;
  policyEngine: PolicyEngineRow[] | null;
  /** Measurements that failed in this run (their figures are missing, not zero). */
  failures: string[];
}

export interface Metric {
  readonly id: string;
  readonly label: string;
  readonly better: 'higher' | 'lower';
  /** False when "direct" has no such figure (it runs no proxy). */
  readonly hasDirect: boolean;
  value(run: TargetRun, memoryMetric: 'rss' | 'pss' | null): number | null;
}

const finite = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);
const proxied = (v: number | undefined): number | null => (v === undefined || v <= 0 ? null : v);

export const metrics: readonly Metric[] = [
  {
    id: 'handshakeRate',
    label: 'handshake cycles/s (50 clients)',
    better: 'higher',
    hasDirect: true,
    value: (r) => finite(r.handshake?.cyclesPerSecond),
  },
  {
    id: 'handshakeP50',
    label: 'handshake p50, 50 clients (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshake && r.handshake.handshakeP50Us / 1000),
  },
  {
    id: 'handshakeP99',
    label: 'handshake p99, 50 clients (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshake && r.handshake.handshakeP99Us / 1000),
  },
  {
    id: 'handshakeP50Single',
    label: 'handshake p50, 1 client (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshakeSingle && r.handshakeSingle.handshakeP50Us / 1000),
  },
  {
    id: 'handshakeP99Single',
    label: 'handshake p99, 1 client (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshakeSingle && r.handshakeSingle.handshakeP99Us / 1000),
  },
  {
    id: 'cycleP50',
    label: 'whole cycle p50, 50 clients (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshake && r.handshake.cycleP50Us / 1000),
  },
  {
    id: 'cycleP99',
    label: 'whole cycle p99, 50 clients (ms)',
    better: 'lower',
    hasDirect: true,
    value: (r) => finite(r.handshake && r.handshake.cycleP99Us / 1000),
  },
  {
    id: 'cpuPerSession',
    label: 'proxy CPU µs/session',
    better: 'lower',
    hasDirect: false,
    value: (r) => proxied(r.handshake?.proxyCpuUsPerSession),
  },
  {
    id: 'throughput1',
    label: 'throughput, 1 session (MiB/s)',
    better: 'higher',
    hasDirect: true,
    value: (r) => finite(r.throughput1?.mibPerSecond),
  },
  {
    id: 'throughput8',
    label: 'throughput, 8 sessions (MiB/s)',
    better: 'higher',
    hasDirect: true,
    value: (r) => finite(r.throughput8?.mibPerSecond),
  },
  {
    id: 'cpuPerGiB1',
    label: 'proxy CPU s/GiB, 1 session',
    better: 'lower',
    hasDirect: false,
    value: (r) => proxied(r.throughput1?.proxyCpuSecondsPerGiB),
  },
  {
    id: 'cpuPerGiB8',
    label: 'proxy CPU s/GiB, 8 sessions',
    better: 'lower',
    hasDirect: false,
    value: (r) => proxied(r.throughput8?.proxyCpuSecondsPerGiB),
  },
  {
    id: 'idleMemory',
    label: 'memory per idle session (KiB)',
    better: 'lower',
    hasDirect: false,
    value: (r, memory) => {
      if (r.idle === undefined || memory === null || r.idle.opened === 0) return null;
      return (memory === 'pss' ? r.idle.pssBytesPerSession : r.idle.rssBytesPerSession) / 1024;
    },
  },
  {
    id: 'idleMemoryMarginal',
    label: 'memory per added idle session (KiB)',
    better: 'lower',
    hasDirect: false,
    value: (r, memory) => {
      if (r.idle === undefined || memory === null || r.idle.opened === 0) return null;
      return (memory === 'pss' ? r.idle.marginalPssBytesPerSession : r.idle.marginalRssBytesPerSession) / 1024;
    },
  },
];

export function metricById(id: string): Metric {
  const m = metrics.find((x) => x.id === id);
  if (m === undefined) throw new Error(`no metric ${id}`);
  return m;
}
