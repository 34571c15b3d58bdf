// A Prometheus histogram for the per-session hot path. prom-client's Histogram, even through a
// bound child, rebuilds and validates a labels object and hashes it on every observe (profiled:
// three observes per session were ~60% of the metrics subscribers' CPU, ~2% of handshake CPU).
// Here a bound child is the label set's own counters: an observe is a bucket scan and two adds.
// Registered in a prom-client Registry like any metric; get() returns exactly what prom-client's
// Histogram returns for the same observations (test/telemetry/fast-histogram.test.ts), so the
// /metrics text, the JSON the workers' supervisor sums and the OTLP bridge are unchanged.
import type { Registry } from 'prom-client';

/** One label set: per-bucket (not cumulative) counts, sum and count. */
export class HistogramChild {
  readonly labels: Readonly<Record<string, string>>;
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

interface HistogramValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

export class FastHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[]; // public like prom-client's: the reference generator reads it
  readonly #bounds: readonly number[];
  /** By label values joined with NUL (label values never hold one: they are bounded names). */
  readonly #children = new Map<string, HistogramChild>();

  constructor(config: {
    name: string;
    help: string;
    labelNames: readonly L[];
    buckets: readonly number[];
    registers: Registry[];
  }) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    for (const registry of config.registers)
      registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The child for these label values, in labelNames order; bind it once and keep it. */
  labels(...values: string[]): HistogramChild {
    const key = values.join('\0');
    let child = this.#children.get(key);
    if (child === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] ?? ''));
      child = new HistogramChild(labels, this.#bounds);
      this.#children.set(key, child);
    }
    return child;
  }

  reset(): void {
    this.#children.clear();
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: HistogramValue[]; aggregator: 'sum' }> {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const child of this.#children.values()) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += child.counts[i]!;
        values.push({ labels: { le, ...child.labels }, value: cumulative, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf', ...child.labels }, value: child.count, metricName: bucket, exemplar: null });
      values.push({
        labels: { ...child.labels },
        value: child.sum,
        metricName: `${this.name}_sum`,
        exemplar: undefined,
      });
      values.push({
        labels: { ...child.labels },
        value: child.count,
        metricName: `${this.name}_count`,
        exemplar: undefined,
      });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
