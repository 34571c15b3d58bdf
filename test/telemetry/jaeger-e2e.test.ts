// End to end against a real tracing backend: the real `socks4-fleet proxy` and `policy push`
// processes export OTLP, configured only by OTEL_* variables, to Jaeger v2 (bin/jaeger, in-memory
// storage), and the test reads back what Jaeger's query API returns: one trace per session with
// its child spans, and a push trace that every pod's "snapshot enforce" span links to.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ATTR_SNAPSHOT_CHANGED, PUSH_SPAN_NAME } from '../../src/cli/push-command.ts';
import { Reason } from '../../src/errors.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { SocksAttr, SpanName } from '../../src/telemetry/session-spans.ts';
import { startJaeger, type JaegerBackend, type StoredSpan } from '../helpers/jaeger.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { exchange, socks4Request, startEchoServer, type Closable } from '../helpers/servers.ts';
import { startCli, type CliProcess } from '../helpers/spawn.ts';
import { SERVICE_NAMES } from './service-names.ts';

const POLICY = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: traced, namespace: proxies}
spec:
  rules:
    - {name: no-discard, action: Deny, to: {ports: ["9"]}}
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

let jaeger: JaegerBackend;
let echo: Closable & { port: number };
let dir: string;
before(async () => {
  [jaeger, echo, dir] = await Promise.all([
    startJaeger(),
    startEchoServer(),
    mkdtemp(path.join(tmpdir(), 'socks4-jaeger-e2e-')),
  ]);
  await writeFile(path.join(dir, 'policy.yaml'), POLICY);
});
after(async () => {
  await Promise.all([
    jaeger?.stop(),
    echo?.close(),
    dir === undefined ? undefined : rm(dir, { recursive: true, force: true }),
  ]);
});

/** A proxy process exporting to Jaeger as pod `pod`; resolves once it listens. */
async function startTracedProxy(pod: string, rules: string[]): Promise<{ cli: CliProcess; port: number }> {
  // Port 0: the kernel picks, the log line tells (no race with other processes for a probed port).
  const cli = startCli(
    ['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--drain-grace', '0', ...rules],
    jaeger.otelEnv({ OTEL_RESOURCE_ATTRIBUTES: `k8s.pod.name=${pod}` }),
  );
  await cli.waitForOutput(/"listen":"127\.0\.0\.1:\d+".*proxy listening/);
  const port = Number(/"listen":"127\.0\.0\.1:(\d+)"/.exec(cli.output())?.[1]);
  return { cli, port };
}

/**
 * Names the traces in the test report; with JAEGER_E2E_DUMP=DIR also writes Jaeger's answers
 * (API v3, OTLP JSON) there, for a person to read what a user of the backend would see.
 */
async function dumpTraces(t: TestContext, label: string, traces: Record<string, string>): Promise<void> {
  for (const [name, traceId] of Object.entries(traces))
    t.diagnostic(`${label} ${name}: ${jaeger.queryUrl}/api/v3/traces/${traceId}`);
  const dumpDir = process.env.JAEGER_E2E_DUMP;
  if (dumpDir === undefined || dumpDir === '') return;
  await mkdir(dumpDir, { recursive: true });
  for (const [name, traceId] of Object.entries(traces)) {
    await writeFile(
      path.join(dumpDir, `${label}-${name.replace(/\W+/g, '-')}.json`),
      `${JSON.stringify(await jaeger.getTraceJson(traceId), null, 2)}\n`,
    );
  }
}

const byTrace = (spans: readonly StoredSpan[]): Map<string, StoredSpan[]> => {
  const traces = new Map<string, StoredSpan[]>();
  for (const s of spans) traces.set(s.traceId, [...(traces.get(s.traceId) ?? []), s]);
  return traces;
};

test('one trace per session: the SERVER span with its attributes and child spans, as Jaeger returns it', async (t) => {
  const { cli, port } = await startTracedProxy('proxy-a', ['--policy-file', path.join(dir, 'policy.yaml')]);
  try {
    const granted = await exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'alice'));
    assert.equal(granted.reply[1], 90);
    granted.raw.socket.write('ping');
    granted.raw.socket.end();
    await granted.raw.closed;
    const refused = await exchange(port, socks4Request(1, 9, '127.0.0.1', 'bob'));
    assert.equal(refused.reply[1], 91);
    await refused.raw.closed;
  } finally {
    assert.equal(await cli.stop('SIGTERM'), 0, cli.output()); // drain flushes the spans
  }

  const spans = await jaeger.waitForSpans(
    { service: SERVICE_NAMES.proxy },
    (s) => s.filter((x) => x.name === SpanName.Connect).length >= 2,
  );
  const sessions = spans.filter((s) => s.name === SpanName.Connect);
  assert.equal(sessions.length, 2);
  assert.equal(new Set(sessions.map((s) => s.traceId)).size, 2, 'each session is its own trace');
  const traces = byTrace(spans);
  for (const s of sessions) {
    assert.equal(s.kind, 'server');
    assert.equal(s.parentSpanId, '', 'the session span is the root of its trace');
    assert.equal(s.resource['service.name'], SERVICE_NAMES.proxy);
    assert.equal(s.resource['k8s.pod.name'], 'proxy-a', 'OTEL_RESOURCE_ATTRIBUTES reach the backend');
  }

  const ok = sessions.find((s) => s.attributes[SocksAttr.ReplyCode] === 90);
  assert.ok(ok, 'the granted session');
  assert.equal(ok.attributes[SocksAttr.Command], 'connect');
  assert.equal(ok.attributes[SocksAttr.UserId], 'alice');
  assert.equal(ok.attributes[SocksAttr.DestinationPort], echo.port);
  assert.equal(ok.attributes[SocksAttr.Rule], 'proxies/traced/loopback');
  assert.equal(ok.attributes[SocksAttr.BytesFromClient], 4);
  assert.equal(ok.attributes[SocksAttr.BytesToClient], 4, 'the echo came back');
  assert.equal(ok.attributes[SocksAttr.Reason], undefined);
  assert.notEqual(ok.status, 'error');
  assert.ok(ok.events.some((e) => e.name === 'socks4.reply' && e.attributes[SocksAttr.ReplyCode] === 90));
  const okChildren = (traces.get(ok.traceId) ?? []).filter((s) => s !== ok);
  const connect = okChildren.find((s) => s.name === 'socks4 upstream connect');
  assert.ok(connect, `the upstream connect is a child span: ${okChildren.map((s) => s.name).join(', ')}`);
  assert.equal(connect.parentSpanId, ok.spanId);
  assert.equal(connect.kind, 'client');
  assert.ok(connect.startMs >= ok.startMs && connect.endMs <= ok.endMs, 'the child lies inside its session');

  const no = sessions.find((s) => s.attributes[SocksAttr.ReplyCode] === 91);
  assert.ok(no, 'the refused session');
  assert.equal(no.attributes[SocksAttr.Reason], Reason.RuleDenied);
  assert.equal(no.attributes[SocksAttr.Rule], 'proxies/traced/no-discard');
  assert.equal(no.attributes['error.type'], Reason.RuleDenied);
  // A policy refusal is the policy working, not a failure (OpenTelemetry SERVER span, like 4xx).
  assert.notEqual(no.status, 'error');
  assert.deepEqual(
    (traces.get(no.traceId) ?? []).map((s) => s.name),
    [SpanName.Connect],
    'a refusal by rule opens no upstream connect',
  );

  // The snapshot the proxy started with is enforced in a trace of its own.
  assert.ok(spans.some((s) => s.name === SpanName.SnapshotEnforce && s.traceId !== ok.traceId));
  await dumpTraces(t, 'session', { granted: ok.traceId, refused: no.traceId });
});

test("policy push → every pod: the push trace and each pod's snapshot enforce span linked to it", async (t) => {
  let redis: RedisServer | null = null;
  const pods: CliProcess[] = [];
  try {
    redis = await startRedis();
    const prefix = 'jaeger-e2e';
    const fleet = ['--redis-url', redis.url, '--redis-prefix', prefix];
    for (const pod of ['proxy-0', 'proxy-1']) pods.push((await startTracedProxy(pod, fleet)).cli);

    const push = startCli(['policy', 'push', path.join(dir, 'policy.yaml'), ...fleet], jaeger.otelEnv());
    assert.equal(await push.exited, 0, push.output());
    const version = /published ([0-9a-f]{12})/.exec(push.output())?.[1];
    assert.ok(version, push.output());
    // Every pod acted on the change notice before it drains and flushes.
    for (const pod of pods) await pod.waitForOutput(new RegExp(`"version":"${version}".*rules snapshot loaded`));
    for (const pod of pods) assert.equal(await pod.stop('SIGTERM'), 0, pod.output());

    const [pushSpan] = await jaeger.waitForSpans(
      { service: SERVICE_NAMES.push, operation: PUSH_SPAN_NAME },
      (s) => s.length === 1,
    );
    assert.ok(pushSpan);
    assert.equal(pushSpan.kind, 'producer');
    assert.equal(pushSpan.parentSpanId, '');
    assert.equal(pushSpan.attributes[SocksAttr.SnapshotVersion], version);
    assert.equal(pushSpan.attributes[ATTR_SNAPSHOT_CHANGED], true);
    assert.equal(pushSpan.attributes['messaging.destination.name'], ruleKeys(prefix).channel);

    const enforced = await jaeger.waitForSpans(
      { service: SERVICE_NAMES.proxy, operation: SpanName.SnapshotEnforce },
      (s) => s.length >= 2,
    );
    const linked = enforced.filter((s) =>
      s.links.some((l) => l.traceId === pushSpan.traceId && l.spanId === pushSpan.spanId),
    );
    assert.deepEqual(
      linked.map((s) => s.resource['k8s.pod.name']).sort(),
      ['proxy-0', 'proxy-1'],
      'both pods link their enforce span to the push',
    );
    for (const s of linked) {
      assert.equal(s.attributes[SocksAttr.SnapshotVersion], version);
      assert.equal(s.attributes[SocksAttr.SnapshotSource], 'redis');
      assert.notEqual(s.traceId, pushSpan.traceId, "a link, not a parent: each pod's load is its own trace");
    }
    assert.deepEqual(
      await jaeger.services(),
      [SERVICE_NAMES.proxy, SERVICE_NAMES.push].sort(),
      'every process exported under its service name',
    );
    await dumpTraces(t, 'propagation', {
      push: pushSpan.traceId,
      ...Object.fromEntries(linked.map((s) => [`enforce ${s.resource['k8s.pod.name']}`, s.traceId])),
    });
  } finally {
    for (const pod of pods) await pod.stop('SIGKILL');
    await redis?.stop();
  }
});
