// kubectl apply → operator → every pod, as a tracing backend shows it: the real `socks4-fleet
// operator` (on a real control plane, under its shipped RBAC) and a real proxy in fleet mode both
// export OTLP, configured only by OTEL_* variables, to Jaeger; the test reads back the operator's
// reconcile traces (publish and status-patch child spans) and the pod's "snapshot enforce" span
// linked to the publish that made the snapshot, propagation delay included.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OPERATOR_SERVICE_NAME } from '../../operator/command.ts';
import { OperatorAttr, OperatorSpan } from '../../operator/controller.ts';
import { SocksAttr, SpanName } from '../../src/telemetry/session-spans.ts';
import { startJaeger, type JaegerBackend, type StoredSpan } from '../helpers/jaeger.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startOperatorReplica } from '../helpers/operator-replica.ts';
import { startCli, type CliProcess } from '../helpers/spawn.ts';
import { startTestCluster, type TestCluster } from '../operator/cluster.ts';
import { SERVICE_NAMES } from './service-names.ts';

const POLICY = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: traced, namespace: proxies}
spec:
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;
const PREFIX = 'operator-tracing-e2e';

let jaeger: JaegerBackend;
let redis: RedisServer;
let cluster: TestCluster;
let dir: string;
before(async () => {
  [jaeger, redis, cluster, dir] = await Promise.all([
    startJaeger(),
    startRedis(),
    startTestCluster({ watchNamespaces: ['proxies'] }),
    mkdtemp(path.join(tmpdir(), 'socks4-operator-tracing-')),
  ]);
  await writeFile(path.join(dir, 'policy.yaml'), POLICY);
});
after(async () => {
  await Promise.all([
    jaeger?.stop(),
    redis?.stop(),
    cluster?.stop(),
    dir === undefined ? undefined : rm(dir, { recursive: true, force: true }),
  ]);
});

/** With JAEGER_E2E_DUMP=DIR also writes Jaeger's answers (API v3, OTLP JSON) there. */
async function dumpTraces(t: TestContext, traces: Record<string, string>): Promise<void> {
  for (const [name, traceId] of Object.entries(traces))
    t.diagnostic(`operator ${name}: ${jaeger.queryUrl}/api/v3/traces/${traceId}`);
  const dumpDir = process.env.JAEGER_E2E_DUMP;
  if (dumpDir === undefined || dumpDir === '') return;
  await mkdir(dumpDir, { recursive: true });
  for (const [name, traceId] of Object.entries(traces)) {
    await writeFile(
      path.join(dumpDir, `operator-${name.replace(/\W+/g, '-')}.json`),
      `${JSON.stringify(await jaeger.getTraceJson(traceId), null, 2)}\n`,
    );
  }
}

const childrenOf = (spans: readonly StoredSpan[], parent: StoredSpan): StoredSpan[] =>
  spans.filter((s) => s.parentSpanId === parent.spanId);

test("kubectl apply → operator reconcile and publish → the pod's snapshot enforce span, linked, in Jaeger", async (t) => {
  const processes: CliProcess[] = [];
  let version: string | undefined;
  try {
    const fleet = ['--redis-url', redis.url, '--redis-prefix', PREFIX];
    const operator = startOperatorReplica({
      cluster,
      redisUrl: redis.url,
      prefix: PREFIX,
      args: ['--namespaces', 'proxies'],
      env: jaeger.otelEnv(),
    });
    processes.push(operator);
    const proxy = startCli(
      ['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--drain-grace', '0', ...fleet],
      jaeger.otelEnv({ OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=proxy-0' }),
    );
    processes.push(proxy);
    await Promise.all([operator.waitForOutput(/became leader/), proxy.waitForOutput(/proxy listening/)]);

    await cluster.kubectl('apply', '-f', path.join(dir, 'policy.yaml'));
    // (An empty snapshot may have been published before the apply: take the one with the policy.)
    const published = /"version":"([0-9a-f]{12})"[^\n]*"policies":1[^\n]*published rules snapshot/;
    await operator.waitForOutput(published);
    version = published.exec(operator.output())?.[1];
    assert.ok(version, operator.output());
    await proxy.waitForOutput(new RegExp(`"version":"${version}".*rules snapshot loaded`));
    // The status patch follows the publish: the Ready condition is its result.
    await cluster.kubectl('wait', '-n', 'proxies', '--for=condition=Ready', '--timeout=20s', 'socks4policy/traced');
    // SIGTERM ends in-flight reconciles and drains, then flushes the spans.
    assert.equal(await proxy.stop('SIGTERM'), 0, proxy.output());
    assert.equal(await operator.stop('SIGTERM'), 0, operator.output());
  } finally {
    for (const cli of processes) await cli.stop('SIGKILL');
  }

  // The reconcile that published this version, with its publish child span.
  const operatorSpans = await jaeger.waitForSpans(
    { service: SERVICE_NAMES.operator, operation: OperatorSpan.ReconcileSnapshot },
    (spans) =>
      spans.some(
        (s) => s.name === OperatorSpan.ReconcileSnapshot && s.attributes[OperatorAttr.SnapshotVersion] === version,
      ),
  );
  const reconcile = operatorSpans.find(
    (s) => s.name === OperatorSpan.ReconcileSnapshot && s.attributes[OperatorAttr.SnapshotVersion] === version,
  );
  assert.ok(reconcile);
  assert.equal(reconcile.parentSpanId, '', 'one trace per reconcile');
  assert.equal(reconcile.resource['service.name'], OPERATOR_SERVICE_NAME);
  assert.equal(reconcile.attributes[OperatorAttr.Outcome], 'published');
  assert.equal(reconcile.attributes[OperatorAttr.PolicyCount], 1);
  const reconcileTrace = await jaeger.getTrace(reconcile.traceId);
  const [publish, ...others] = childrenOf(reconcileTrace, reconcile);
  assert.ok(publish, `the publish is a child span: ${reconcileTrace.map((s) => s.name).join(', ')}`);
  assert.deepEqual(others, []);
  assert.equal(publish.name, OperatorSpan.Publish);
  assert.equal(publish.kind, 'producer');
  assert.equal(publish.attributes[OperatorAttr.SnapshotVersion], version);
  assert.equal(publish.attributes[OperatorAttr.SnapshotChanged], true);
  assert.ok(
    publish.startMs >= reconcile.startMs && publish.endMs <= reconcile.endMs,
    'the publish lies inside its reconcile',
  );

  // The policy's own reconcile: name, namespace, generation, outcome, and the status patch.
  const policySpans = await jaeger.waitForSpans(
    { service: SERVICE_NAMES.operator, operation: OperatorSpan.ReconcilePolicy },
    (spans) => spans.some((s) => s.attributes[OperatorAttr.Outcome] === 'status-patched'),
  );
  const patched = policySpans.find((s) => s.attributes[OperatorAttr.Outcome] === 'status-patched');
  assert.ok(patched);
  assert.equal(patched.attributes[OperatorAttr.PolicyName], 'traced');
  assert.equal(patched.attributes[OperatorAttr.Namespace], 'proxies');
  assert.equal(patched.attributes[OperatorAttr.Generation], 1);
  assert.deepEqual(
    childrenOf(policySpans, patched).map((s) => [s.name, s.kind]),
    [[OperatorSpan.PatchStatus, 'client']],
  );
  assert.deepEqual(
    patched.links.map((l) => [l.traceId, l.spanId]),
    [[publish.traceId, publish.spanId]],
    'the status patch links to the publish that carried the policy',
  );
  assert.ok(
    policySpans.some(
      (s) =>
        s.attributes[OperatorAttr.Outcome] === 'finalizer-added' && s.attributes[OperatorAttr.PolicyName] === 'traced',
    ),
  );

  // The pod's enforce span links to the publish: apply → operator → pod in one search.
  const enforced = await jaeger.waitForSpans(
    { service: SERVICE_NAMES.proxy, operation: SpanName.SnapshotEnforce },
    (spans) => spans.some((s) => s.attributes[SocksAttr.SnapshotVersion] === version),
  );
  const enforce = enforced.find((s) => s.attributes[SocksAttr.SnapshotVersion] === version);
  assert.ok(enforce);
  assert.deepEqual(
    enforce.links.map((l) => [l.traceId, l.spanId]),
    [[publish.traceId, publish.spanId]],
    "the enforce span links to the operator's publish",
  );
  assert.notEqual(enforce.traceId, reconcile.traceId, "a link, not a parent: the pod's load is its own trace");
  assert.equal(enforce.resource['k8s.pod.name'], 'proxy-0');
  assert.equal(enforce.attributes[SocksAttr.SnapshotSource], 'redis');
  const delayMs = enforce.startMs - publish.startMs;
  assert.ok(delayMs >= 0 && delayMs < 10_000, `propagation delay ${delayMs} ms`);
  t.diagnostic(`propagation delay publish → enforce: ${delayMs.toFixed(1)} ms`);

  assert.deepEqual(
    await jaeger.services(),
    [SERVICE_NAMES.operator, SERVICE_NAMES.proxy].sort(),
    'every process exported under its service name',
  );
  await dumpTraces(t, {
    reconcile: reconcile.traceId,
    'policy reconcile': patched.traceId,
    'enforce proxy-0': enforce.traceId,
  });
});
