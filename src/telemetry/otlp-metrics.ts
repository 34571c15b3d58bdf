// The Prometheus registry (src/telemetry/metrics.ts) also exported over OTLP: a MetricProducer
// reads the same prom-client registry at each export and converts it, so /metrics and OTLP always
// agree and no metric is defined twice. Counters become cumulative monotonic sums, gauges gauges,
// histograms explicit-bucket histograms; summaries (none of ours) are left out. Labels pass through
// unchanged, so the "no per-client labels" rule of the registry holds here too.
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { getNumberFromEnv, getStringFromEnv, hrTime, millisToHrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';

/** What prom-client's getMetricsAsJSON() returns at run time (its typings say `type` is numeric). */
export interface PromMetric {
  name: string;
  help: string;
  type: string; // 'counter' | 'gauge' | 'histogram' | 'summary'
  values: { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[];
}

const SCOPE = { name: 'socks4-fleet/prometheus-bridge' } as const;

function unitOf(name: string): string {
  if (/_seconds(_total)?$/.test(name)) return 's';
  if (/_bytes(_total)?$/.test(name)) return 'By';
  return '';
}

function attributesOf(labels: Record<string, string | number | undefined>, skip?: string): Attributes {
  const attributes: Attributes = {};
  for (const [key, value] of Object.entries(labels))
    if (key !== skip && value !== undefined) attributes[key] = String(value);
  return attributes;
}

/** Labels as a map key; `le` is left out so all buckets of one series land together. */
const seriesKey = (labels: Record<string, string | number | undefined>): string =>
  JSON.stringify(
    Object.entries(labels)
      .filter(([k]) => k !== 'le')
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );

function histogramPoints(metric: PromMetric, startTime: HrTime, endTime: HrTime): DataPoint<Histogram>[] {
  const series = new Map<string, { labels: Attributes; le: [number, number][]; sum: number; count: number }>();
  for (const v of metric.values) {
    const key = seriesKey(v.labels);
    let s = series.get(key);
    if (s === undefined) series.set(key, (s = { labels: attributesOf(v.labels, 'le'), le: [], sum: 0, count: 0 }));
    if (v.metricName === `${metric.name}_sum`) s.sum = v.value;
    else if (v.metricName === `${metric.name}_count`) s.count = v.value;
    else if (v.metricName === `${metric.name}_bucket`) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      s.le.push([le, v.value]);
    }
  }
  return [...series.values()].map((s) => {
    // Prometheus buckets are cumulative (≤ le); OTLP wants the count of each bucket alone.
    const sorted = s.le.sort((a, b) => a[0] - b[0]);
    const boundaries = sorted.filter(([le]) => Number.isFinite(le)).map(([le]) => le);
    const counts: number[] = [];
    let below = 0;
    for (const [le, cumulative] of sorted) {
      if (!Number.isFinite(le)) continue;
      counts.push(cumulative - below);
      below = cumulative;
    }
    counts.push(s.count - below);
    return {
      startTime,
      endTime,
      attributes: s.labels,
      value: { buckets: { boundaries, counts }, sum: s.sum, count: s.count },
    };
  });
}

/** Pure conversion of one registry read; `startTime` is when the cumulative series began. */
export function convertPromMetrics(metrics: readonly PromMetric[], startTime: HrTime, endTime: HrTime): MetricData[] {
  const out: MetricData[] = [];
  for (const metric of metrics) {
    const descriptor = {
      name: metric.name,
      description: metric.help,
      unit: unitOf(metric.name),
      valueType: ValueType.DOUBLE,
    };
    const points = (): DataPoint<number>[] =>
      metric.values.map((v) => ({ startTime, endTime, attributes: attributesOf(v.labels), value: v.value }));
    if (metric.type === 'counter') {
      out.push({
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.SUM,
        isMonotonic: true,
        dataPoints: points(),
      });
    } else if (metric.type === 'gauge') {
      out.push({
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: points(),
      });
    } else if (metric.type === 'histogram') {
      out.push({
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: histogramPoints(metric, startTime, endTime),
      });
    }
  }
  return out;
}

export function createPromMetricProducer(registry: Registry, startedAt = Date.now()): MetricProducer {
  const startTime = millisToHrTime(startedAt);
  return {
    async collect(): Promise<CollectionResult> {
      const metrics = (await registry.getMetricsAsJSON()) as unknown as PromMetric[];
      return {
        // The reader replaces the resource with the SDK's; only the scope metrics are used.
        resourceMetrics: {
          resource: emptyResource(),
          scopeMetrics: [{ scope: SCOPE, metrics: convertPromMetrics(metrics, startTime, hrTime()) }],
        },
        errors: [],
      };
    },
  };
}

/** The OTLP metric exporter the standard variables ask for (protocol, endpoint, headers). */
async function createOtlpMetricExporter(): Promise<PushMetricExporter> {
  const protocol =
    (
      getStringFromEnv('OTEL_EXPORTER_OTLP_METRICS_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL')
    )?.trim() || 'http/protobuf';
  if (protocol === 'grpc') return new (await import('@opentelemetry/exporter-metrics-otlp-grpc')).OTLPMetricExporter();
  if (protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter();
  return new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter();
}

/** A periodic reader (OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT) pushing the registry over OTLP. */
export async function createOtlpMetricReader(
  registry: Registry,
  exporter?: PushMetricExporter,
): Promise<PeriodicExportingMetricReader> {
  const exportIntervalMillis = getNumberFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000;
  const exportTimeoutMillis = Math.min(getNumberFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000, exportIntervalMillis);
  return new PeriodicExportingMetricReader({
    exporter: exporter ?? (await createOtlpMetricExporter()),
    exportIntervalMillis,
    exportTimeoutMillis,
    metricProducers: [createPromMetricProducer(registry)],
  });
}
