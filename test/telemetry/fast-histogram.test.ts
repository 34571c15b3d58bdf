// The session histograms (socks4_handshake_duration_seconds, socks4_phase_duration_seconds) are
// FastHistograms; dashboards, the workers' supervisor and the OTLP bridge read them as prom-client
// histograms. The same observations must give the same JSON and the same /metrics text as
// prom-client's own Histogram: bucket edges (a value equal to a bound counts in it), +Inf, sum,
// count, label order, and label sets in the order first seen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import client from 'prom-client';
import { FastHistogram } from '../../src/telemetry/fast-histogram.ts';

const BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
const OBSERVATIONS: Array<[string, string, number]> = [
  ['connect', 'ok', 0.0003],
  ['connect', 'ok', 0.0005],
  ['connect', 'ok', 0.0007],
  ['limits', 'ok', 0.001],
  ['connect', 'UpstreamRefused', 0.02],
  ['connect', 'ok', 30],
  ['connect', 'ok', 31],
  ['limits', 'RateLimited', 0],
  ['dns', 'ok', 4.2],
  ['connect', 'ok', 0.1],
];

async function both(): Promise<{ prom: client.Registry; fast: client.Registry }> {
  const prom = new client.Registry();
  const fast = new client.Registry();
  const config = {
    name: 'socks4_phase_duration_seconds',
    help: 'Duration of handshake phases.',
    labelNames: ['phase', 'outcome'] as const,
    buckets: BUCKETS,
  };
  const reference = new client.Histogram({ ...config, registers: [prom] });
  const ours = new FastHistogram({ ...config, registers: [fast] });
  for (const [phase, outcome, value] of OBSERVATIONS) {
    reference.labels(phase, outcome).observe(value);
    ours.labels(phase, outcome).observe(value);
  }
  return { prom, fast };
}

test('FastHistogram gives what prom-client gives: JSON and /metrics text', async () => {
  const { prom, fast } = await both();
  assert.deepStrictEqual(await fast.getMetricsAsJSON(), await prom.getMetricsAsJSON());
  assert.equal(await fast.metrics(), await prom.metrics());
});

test('the workers supervisor sums FastHistograms like prom-client histograms', async () => {
  const a = await both();
  const b = await both();
  const summedProm = await client.AggregatorRegistry.aggregate([
    await a.prom.getMetricsAsJSON(),
    await b.prom.getMetricsAsJSON(),
  ]).metrics();
  const summedFast = await client.AggregatorRegistry.aggregate([
    await a.fast.getMetricsAsJSON(),
    await b.fast.getMetricsAsJSON(),
  ]).metrics();
  assert.equal(summedFast, summedProm);
  assert.match(summedFast, /socks4_phase_duration_seconds_count\{phase="connect",outcome="ok"\} 12/);
});

test('a non-finite value is refused, as prom-client refuses it', () => {
  const h = new FastHistogram({
    name: 'x_seconds',
    help: 'x',
    labelNames: ['a'] as const,
    buckets: [1],
    registers: [],
  });
  assert.throws(() => h.labels('b').observe(Number.NaN), TypeError);
});
