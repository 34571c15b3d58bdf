// End to end through the real SDK, configured only by OTEL_* variables: a proxy session's trace
// and the Prometheus registry's metrics arrive at a local OTLP/HTTP (JSON) receiver, the resource
// carries our service name under OTEL_RESOURCE_ATTRIBUTES, and shutdown flushes both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trace } from '@opentelemetry/api';
import { createProxyMetrics } from '../../src/telemetry/metrics.ts';
import { activeTraceparent } from '../../src/telemetry/trace-context.ts';
import { startTracing } from '../../src/telemetry/tracing.ts';
import { exchange, socks4Request, startEchoServer, startProxy, allowLoopbackPolicy } from '../helpers/servers.ts';
import { attr, receivedSpans, startOtlpReceiver, type KeyValue } from './otlp-receiver.ts';

test('OTEL_* variables alone: the session trace and the metrics reach an OTLP receiver; shutdown flushes', async () => {
  const receiver = await startOtlpReceiver();
  for (const key of Object.keys(process.env)) if (key.startsWith('OTEL_')) delete process.env[key];
  Object.assign(process.env, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    OTEL_NODE_RESOURCE_DETECTORS: 'env',
  });
  const echo = await startEchoServer();
  const proxy = await startProxy(allowLoopbackPolicy);
  const metrics = createProxyMetrics({ activeSessions: () => proxy.server.activeSessions, snapshot: () => null });
  const tracing = await startTracing({ serviceName: 'socks4-fleet-proxy', metricsRegistry: metrics.registry });
  try {
    assert.equal(tracing.tracesEnabled, true);
    assert.equal(tracing.metricsEnabled, true);
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1', 'carol'));
    assert.equal(reply[1], 90);
    raw.socket.end();
    await raw.closed;
    // The operator's helper: the traceparent of whatever span is active.
    const inside = trace.getTracer('test').startActiveSpan('reconcile', (span) => {
      const value = activeTraceparent();
      span.end();
      return value;
    });
    assert.match(inside ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await proxy.close();
  } finally {
    await tracing.shutdown();
    metrics.close();
    await echo.close();
    await receiver.close();
  }
  assert.equal(activeTraceparent(), undefined);

  const spans = receivedSpans(receiver.received);
  const session = spans.find((span) => span.name === 'socks4 CONNECT');
  assert.ok(session, `no session span among ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(attr(session.resource, 'service.name'), 'socks4-fleet-proxy');
  assert.equal(attr(session.resource, 'deployment.environment.name'), 'test');
  assert.equal(attr(session.attributes, 'socks4.userid'), 'carol');
  assert.equal(Number(attr(session.attributes, 'socks4.reply.code')), 90); // int64: number or string in JSON

  const exported = receiver.received
    .filter((r) => r.path === '/v1/metrics')
    .flatMap(
      (r) =>
        (
          r.body as {
            resourceMetrics: {
              scopeMetrics: {
                metrics: { name: string; sum?: { dataPoints: { asDouble?: number; attributes: KeyValue[] }[] } }[];
              }[];
            }[];
          }
        ).resourceMetrics,
    )
    .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
  const sessions = exported.find((m) => m.name === 'socks4_sessions_total');
  assert.ok(sessions?.sum, `metrics exported: ${exported.map((m) => m.name).join(', ')}`);
  const granted = sessions.sum.dataPoints.find((p) => attr(p.attributes, 'reply') === '90');
  assert.equal(granted?.asDouble, 1);
});
