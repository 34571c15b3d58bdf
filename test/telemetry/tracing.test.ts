// When tracing switches on, the W3C traceparent helpers, the snapshot-enforce span linked to its
// publisher, sampling, and the prom-client → OTLP metric conversion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, TraceFlags } from '@opentelemetry/api';
import { AlwaysOffSampler } from '@opentelemetry/sdk-trace';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import client from 'prom-client';
import { channels, type SnapshotEvent } from '../../src/telemetry/events.ts';
import { convertPromMetrics, type PromMetric } from '../../src/telemetry/otlp-metrics.ts';
import { formatTraceparent, parseTraceparent } from '../../src/telemetry/trace-context.ts';
import { otlpMetricsConfigured, tracesConfigured } from '../../src/telemetry/tracing.ts';
import { exchange, socks4Request, startProxy, allowLoopbackPolicy } from '../helpers/servers.ts';
import { createSpanHarness } from './span-harness.ts';

test('tracing is opt-in: on only with an exporter or endpoint, off when disabled or never sampling', () => {
  const cases: [Record<string, string>, boolean][] = [
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, false],
    [{ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_SAMPLER: 'always_off', OTEL_TRACES_EXPORTER: 'otlp' }, false],
    [
      { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1', OTEL_TRACES_EXPORTER: 'otlp' },
      true,
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }, false],
  ];
  for (const [env, expected] of cases) assert.equal(tracesConfigured(env), expected, JSON.stringify(env));
  assert.equal(otlpMetricsConfigured({}), false);
  assert.equal(otlpMetricsConfigured({ OTEL_METRICS_EXPORTER: 'otlp' }), true);
  assert.equal(otlpMetricsConfigured({ OTEL_METRICS_EXPORTER: 'prometheus' }), false);
  assert.equal(otlpMetricsConfigured({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }), false);
});

test('traceparent: formatted per W3C, parsed back; malformed or all-zero ids are refused', () => {
  const ctx = {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags: TraceFlags.SAMPLED,
  };
  const header = formatTraceparent(ctx);
  assert.equal(header, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  assert.deepEqual(parseTraceparent(header), { ...ctx, isRemote: true });
  assert.equal(formatTraceparent({ ...ctx, traceFlags: TraceFlags.NONE }).slice(-3), '-00');
  assert.equal(
    parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future')?.spanId,
    '00f067aa0ba902b7',
  );
  for (const bad of [
    '',
    'garbage',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
  ]) {
    assert.equal(parseTraceparent(bad), null, bad);
  }
});

const snapshot = (extra: Partial<SnapshotEvent> = {}): SnapshotEvent => ({
  source: 'redis://fleet',
  version: 'abc123def456',
  ruleCount: 7,
  policyCount: 2,
  loadedAt: Date.now(),
  ...extra,
});

test('snapshot enforce: a span per loaded snapshot, linked to the publisher when it was traced', async () => {
  const h = createSpanHarness();
  try {
    const publisher = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    channels.snapshotLoaded.publish(snapshot({ traceparent: publisher }));
    channels.snapshotLoaded.publish(snapshot({ version: 'fedcba987654', traceparent: 'not-a-traceparent' }));
    const [linked, unlinked] = h.spans();
    assert.ok(linked && unlinked);
    assert.equal(linked.name, 'socks4 snapshot enforce');
    assert.equal(linked.kind, SpanKind.INTERNAL);
    assert.equal(linked.parentSpanContext, undefined);
    assert.deepEqual(
      { ...linked.attributes },
      {
        'socks4.snapshot.version': 'abc123def456',
        'socks4.snapshot.source': 'redis://fleet',
        'socks4.snapshot.rule_count': 7,
        'socks4.snapshot.policy_count': 2,
      },
    );
    assert.equal(linked.links.length, 1);
    assert.equal(linked.links[0]?.context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(linked.links[0]?.context.spanId, '00f067aa0ba902b7');
    assert.notEqual(linked.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'its own trace, linked');
    assert.equal(unlinked.attributes['socks4.snapshot.version'], 'fedcba987654');
    assert.deepEqual(unlinked.links, []);
  } finally {
    await h.close();
  }
});

test('a session the sampler drops records nothing: no span, no child, nothing started', async () => {
  const h = createSpanHarness({ sampler: new AlwaysOffSampler() });
  const proxy = await startProxy(allowLoopbackPolicy);
  try {
    // Refused at connect (nobody on port 1): a phase event is published for the dropped session.
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, 1, '127.0.0.1'));
    assert.equal(reply[1], 91);
    await raw.closed;
    assert.equal(proxy.server.activeSessions, 0);
    assert.deepEqual(h.spans(), []);
    assert.equal(h.counts.started, 0);
  } finally {
    await proxy.close();
    await h.close();
  }
});

test('prom-client → OTLP: counters as monotonic sums, gauges, histograms with per-bucket counts', () => {
  const registry = new client.Registry();
  const sessions = new client.Counter({
    name: 'socks4_sessions_total',
    help: 'h1',
    labelNames: ['reply'],
    registers: [registry],
  });
  const active = new client.Gauge({ name: 'socks4_active_sessions', help: 'h2', registers: [registry] });
  const handshake = new client.Histogram({
    name: 'socks4_handshake_duration_seconds',
    help: 'h3',
    labelNames: ['reply'],
    buckets: [0.01, 0.1],
    registers: [registry],
  });
  sessions.inc({ reply: '90' }, 3);
  sessions.inc({ reply: '91' });
  active.set(5);
  for (const v of [0.005, 0.05, 0.07, 3]) handshake.observe({ reply: '90' }, v);
  return registry.getMetricsAsJSON().then((json) => {
    const start: [number, number] = [100, 0];
    const end: [number, number] = [200, 0];
    const out = convertPromMetrics(json as unknown as PromMetric[], start, end);
    const byName = new Map(out.map((m) => [m.descriptor.name, m]));
    const sum = byName.get('socks4_sessions_total');
    assert.ok(sum && sum.dataPointType === DataPointType.SUM);
    assert.equal(sum.isMonotonic, true);
    assert.deepEqual(
      sum.dataPoints.map((p) => [p.attributes, p.value]),
      [
        [{ reply: '90' }, 3],
        [{ reply: '91' }, 1],
      ],
    );
    assert.deepEqual(sum.dataPoints[0]?.startTime, start);
    const gauge = byName.get('socks4_active_sessions');
    assert.ok(gauge && gauge.dataPointType === DataPointType.GAUGE);
    assert.equal(gauge.dataPoints[0]?.value, 5);
    const histogram = byName.get('socks4_handshake_duration_seconds');
    assert.ok(histogram && histogram.dataPointType === DataPointType.HISTOGRAM);
    assert.equal(histogram.descriptor.unit, 's');
    assert.equal(histogram.dataPoints.length, 1);
    const point = histogram.dataPoints[0]!;
    assert.deepEqual(point.attributes, { reply: '90' });
    assert.deepEqual(point.value.buckets, { boundaries: [0.01, 0.1], counts: [1, 2, 1] });
    assert.equal(point.value.count, 4);
    assert.ok(Math.abs((point.value.sum ?? 0) - 3.125) < 1e-9);
  });
});
