// The SSRF guard that refused, as telemetry shows it: the span attribute `socks4.guard`, the
// bounded metric label `socks4_guard_refusals_total{guard}`, and nothing for sessions the guard
// let through or that other reasons refused. Refused destinations are never dialled, so nothing
// here leaves loopback.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createProxyMetrics, type ProxyMetrics } from '../../src/telemetry/metrics.ts';
import { exchange, loopbackOnlyDial, socks4Request, startProxy, type TestProxy } from '../helpers/servers.ts';
import { createSpanHarness, type SpanHarness } from './span-harness.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: guard, namespace: telemetry}
spec:
  rules:
    - {name: no-ssh, action: Deny, to: {ports: ["22"]}}
    - {name: internet, action: Allow, to: {cidrs: ["0.0.0.0/0"]}}
`;

let proxy: TestProxy;
let harness: SpanHarness;
let metrics: ProxyMetrics;
const escaped: string[] = [];

before(async () => {
  harness = createSpanHarness();
  proxy = await startProxy(policy, { dial: loopbackOnlyDial(escaped) });
  metrics = createProxyMetrics({ activeSessions: () => 0, snapshot: () => null });
});

after(async () => {
  metrics.close();
  harness.unsubscribe();
  await harness.close();
  await proxy.close();
});

test('a guard refusal names the class or endpoint on the span and in a bounded metric', async () => {
  const cases: [string, number, string | undefined][] = [
    ['10.1.2.3', 80, 'private'],
    ['100.64.0.1', 80, 'cgnat'],
    ['169.254.169.254', 80, 'link-local'],
    ['127.0.0.1', 80, 'loopback'],
    ['198.18.0.1', 80, 'benchmarking'],
    ['255.255.255.255', 80, 'broadcast'],
    ['10.9.9.9', 80, 'private'],
    ['10.1.2.3', 22, undefined], // refused by a rule, not by the guard
  ];
  for (const [ip, port] of cases) {
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, port, ip, 'u'));
    assert.equal(reply[1], 91, ip);
    raw.socket.destroy();
  }
  const spans = await harness.waitForSessions(cases.length);
  assert.deepEqual(
    spans.map((s) => s.attributes['socks4.guard']),
    cases.map((c) => c[2]),
  );
  assert.deepEqual(
    spans.map((s) => s.attributes['socks4.reason']),
    cases.map((c) => (c[2] === undefined ? 'RuleDenied' : 'GuardedDestination')),
  );
  const text = await metrics.registry.metrics();
  const counted = [...text.matchAll(/^socks4_guard_refusals_total\{guard="([^"]+)"\} (\d+)$/gm)]
    .map((m) => `${m[1]}=${m[2]}`)
    .sort();
  assert.deepEqual(counted, ['benchmarking=1', 'broadcast=1', 'cgnat=1', 'link-local=1', 'loopback=1', 'private=2']);
  assert.deepEqual(escaped, []);
});
