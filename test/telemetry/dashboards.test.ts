// The Grafana dashboards shipped in the chart query only what the product really emits: every
// PromQL series and label comes from the live proxy and operator registries after real events went
// through them, every TraceQL span name and attribute from spans the real session-span code built,
// every resource attribute from the chart's rendered OTEL_RESOURCE_ATTRIBUTES. The chart renders the
// files unchanged into sidecar ConfigMaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { createOperatorMetrics } from '../../operator/metrics.ts';
import { PUSH_SPAN_NAME } from '../../src/cli/push-command.ts';
import { isProxyFailure, Reason } from '../../src/errors.ts';
import { channels, type PhaseEvent, type SessionInfo } from '../../src/telemetry/events.ts';
import { createProxyMetrics } from '../../src/telemetry/metrics.ts';
import { SocksAttr, SpanName } from '../../src/telemetry/session-spans.ts';
import { chartDir, helmEnv, mustRun, requireTools } from '../chart/tools.ts';
import { interpolateGrafana, promqlRefs, traceqlRefs } from './dashboard-queries.ts';
import { SERVICE_NAMES } from './service-names.ts';
import { createSpanHarness } from './span-harness.ts';

const dashboardsDir = path.join(chartDir, 'dashboards');
/** Labels Prometheus adds to every scraped series (Kubernetes service discovery, ServiceMonitor). */
const TARGET_LABELS = new Set(['namespace', 'pod', 'service', 'container', 'endpoint', 'job', 'instance']);

type Target = {
  expr?: string;
  query?: string | { query: string };
  queryType?: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
};
type Panel = {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  gridPos?: object;
};
type Variable = { name: string; type: string; query?: string | { query: string }; current?: { value?: string } };
type Dashboard = {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
};

const dashboardFiles = (await readdir(dashboardsDir)).filter((f) => f.endsWith('.json')).sort();
const dashboards = new Map<string, Dashboard>();
for (const file of dashboardFiles)
  dashboards.set(file, JSON.parse(await readFile(path.join(dashboardsDir, file), 'utf8')) as Dashboard);

function session(overrides: Partial<SessionInfo>): SessionInfo {
  return {
    id: 'f00d',
    startedAt: performance.now() - 5,
    clientAddress: '127.0.0.1',
    clientPort: 40000,
    localAddress: '127.0.0.1',
    localPort: 1080,
    state: 'closed',
    command: 'connect',
    userId: 'alice',
    host: null,
    destIp: '127.0.0.1',
    destPort: 443,
    ruleId: 'proxies/office/web',
    namespace: null,
    tier: 'Namespace',
    snapshotVersion: 'abcdef012345',
    replyCode: 90,
    reason: null,
    closeCause: null,
    handshakeMs: 2,
    bytesFromClient: 10,
    bytesToClient: 20,
    ...overrides,
  };
}

/** Drives the core's channels the way sessions, rule sources and the limiter announce. */
function announceEverything(): void {
  const shapes: { s: SessionInfo; phases: PhaseEvent['phase'][]; error?: Reason }[] = [
    { s: session({ host: 'echo.test' }), phases: ['dns', 'ident', 'limits', 'connect'] },
    {
      s: session({ replyCode: 91, reason: Reason.RateLimited, bytesFromClient: 0, bytesToClient: 0 }),
      phases: ['limits'],
      error: Reason.RateLimited,
    },
    { s: session({ replyCode: 91, reason: Reason.ConcurrencyLimited }), phases: [] },
    { s: session({ command: 'bind' }), phases: ['bind-accept'] },
    // Let through while a Report policy would have refused it.
    {
      s: session({
        report: {
          ruleId: 'proxies/trial/no-web',
          policy: 'proxies/trial',
          action: 'deny',
          reason: 'RuleDenied',
          reply: 91,
        },
      }),
      phases: ['connect'],
    },
    { s: session({ command: null, replyCode: null, reason: Reason.BadVersion, handshakeMs: null }), phases: [] },
  ];
  for (const { s, phases, error } of shapes) {
    channels.sessionStart.publish(s);
    for (const phase of phases)
      channels.sessionPhase.publish({
        session: s,
        phase,
        startedAt: s.startedAt + 1,
        endedAt: s.startedAt + 2,
        error: error ?? null,
      });
    if (s.replyCode === 90) channels.sessionEstablished.publish(s);
    channels.sessionEnd.publish(s);
  }
  channels.connectionRefused.publish({ reason: Reason.TooManySessions });
  channels.snapshotLoaded.publish({
    source: 'redis',
    version: 'abcdef012345',
    ruleCount: 3,
    policyCount: 1,
    loadedAt: Date.now(),
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  });
  channels.snapshotError.publish({ source: 'redis', error: new Error('bad snapshot') });
  channels.limiterError.publish({ error: new Error('redis down') });
}

/** Series name → label names, from the Prometheus text exposition. */
function parseExposition(text: string, into: Map<string, Set<string>>): void {
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (m === null) continue;
    const labels = into.get(m[1] as string) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_]\w*)="/g)) labels.add(l[1] as string);
    into.set(m[1] as string, labels);
  }
}

async function emittedSeries(): Promise<Map<string, Set<string>>> {
  const series = new Map<string, Set<string>>();
  const proxy = createProxyMetrics({
    activeSessions: () => 1,
    snapshot: () => ({ version: 'abcdef012345', loadedAt: Date.now() }),
  });
  try {
    announceEverything();
    parseExposition(await proxy.registry.metrics(), series);
  } finally {
    proxy.close();
  }
  const operator = createOperatorMetrics({ queueDepth: () => 0, isLeader: () => true, watchedPolicies: () => 1 });
  // Every labelled operator metric once, with the label names its definition declares.
  operator.reconciles.inc({ kind: 'policy', result: 'ok' });
  operator.reconcileSeconds.observe({ kind: 'policy' }, 0.01);
  operator.publishes.inc({ result: 'published' });
  parseExposition(await operator.registry.metrics(), series);
  return series;
}

async function emittedSpans(): Promise<{ names: Set<string>; attributes: Set<string> }> {
  const harness = createSpanHarness();
  try {
    announceEverything();
    const spans = harness.spans();
    assert.ok(spans.length >= 10, `the session-span code built spans (${spans.length})`);
    const attributes = new Set<string>(Object.values(SocksAttr));
    for (const span of spans) for (const key of Object.keys(span.attributes)) attributes.add(key);
    return { names: new Set([...spans.map((s) => s.name), PUSH_SPAN_NAME]), attributes };
  } finally {
    await harness.close();
  }
}

/** The chart, rendered with dashboards and tracing on: the ConfigMaps and the proxy's resource attributes. */
let rendered: ReturnType<typeof renderChartOnce> | null = null;
const renderChart = (): ReturnType<typeof renderChartOnce> => (rendered ??= renderChartOnce());
async function renderChartOnce(): Promise<{
  configMaps: { name: string; data: Record<string, string> }[];
  resourceKeys: Set<string>;
}> {
  requireTools('helm');
  const home = await mkdtemp(path.join(tmpdir(), 'socks4-dash-helm-'));
  try {
    const out = await mustRun(
      'helm',
      [
        'template',
        'r1',
        chartDir,
        '--namespace',
        'ns1',
        '--set',
        'dashboards.enabled=true',
        '--set',
        'opentelemetry.enabled=true',
        '--set',
        'opentelemetry.endpoint=http://collector:4318',
        '--show-only',
        'templates/dashboards.yaml',
        '--show-only',
        'templates/proxy/deployment.yaml',
      ],
      { env: helmEnv(home) },
    );
    const docs = parseAllDocuments(out)
      .map(
        (d) => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: unknown },
      )
      .filter((d) => d !== null);
    const configMaps = docs
      .filter((d) => d.kind === 'ConfigMap')
      .map((d) => ({ name: d.metadata.name, data: d.data ?? {} }));
    const deployment = docs.find((d) => d.kind === 'Deployment') as {
      spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
    };
    const env = deployment.spec.template.spec.containers.flatMap((c) => c.env ?? []);
    const attributes = env.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES')?.value ?? '';
    assert.notEqual(attributes, '', 'the chart sets OTEL_RESOURCE_ATTRIBUTES');
    const resourceKeys = new Set(['service.name', ...attributes.split(',').map((kv) => kv.split('=')[0] as string)]);
    return { configMaps, resourceKeys };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Sample values for every variable, as Grafana would substitute them. */
function variableValues(dashboard: Dashboard): Record<string, string> {
  const values: Record<string, string> = { __rate_interval: '1m', __interval: '1m', __range: '1h' };
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === 'string' ? v.query : '';
    values[v.name] =
      v.type === 'datasource'
        ? 'uid'
        : v.type === 'custom'
          ? (query.split(',')[0] as string)
          : v.current?.value || query || 'x';
  }
  return values;
}

const targetsOf = (d: Dashboard): { panel: Panel; target: Target }[] =>
  d.panels
    .filter((p) => p.type !== 'row')
    .flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));

test('dashboards are Grafana JSON with unique ids, a data source variable on every query, and panels that query', () => {
  assert.deepEqual(dashboardFiles, ['socks4-fleet-overview.json', 'socks4-fleet-traces.json']);
  for (const [file, d] of dashboards) {
    assert.equal(d.uid, file.replace(/\.json$/, ''), `${file}: uid follows the file name`);
    assert.ok(d.schemaVersion >= 36 && d.title.startsWith('socks4-fleet / '), file);
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `${file}: panel ids are unique`);
    const sources = new Set(d.templating.list.filter((v) => v.type === 'datasource').map((v) => `\${${v.name}}`));
    for (const panel of d.panels.filter((p) => p.type !== 'row')) {
      assert.ok(panel.gridPos && (panel.targets?.length ?? 0) > 0, `${file} "${panel.title}": placed and has a query`);
      for (const target of panel.targets ?? [])
        assert.ok(sources.has(target.datasource?.uid ?? ''), `${file} "${panel.title}": data source is a variable`);
    }
  }
});

test('every PromQL query names series and labels the proxy and operator really emit', async () => {
  const series = await emittedSeries();
  const d = dashboards.get('socks4-fleet-overview.json') as Dashboard;
  const values = variableValues(d);
  const exprs = [
    ...targetsOf(d).map(({ panel, target }) => ({
      where: panel.title,
      expr: target.expr ?? '',
      legend: target.legendFormat ?? '',
    })),
    ...d.templating.list
      .filter((v) => v.type === 'query')
      .map((v) => ({
        where: `variable ${v.name}`,
        expr: typeof v.query === 'string' ? v.query : (v.query?.query ?? ''),
        legend: '',
      })),
  ];
  const used = new Set<string>();
  for (const { where, expr, legend } of exprs) {
    const refs = promqlRefs(interpolateGrafana(expr, values));
    assert.ok(refs.metrics.length > 0, `${where}: queries a metric`);
    for (const metric of refs.metrics) {
      assert.ok(series.has(metric), `${where}: ${metric} is not emitted by the proxy or the operator`);
      used.add(metric.replace(/_(bucket|count|sum)$/, ''));
    }
    const labelsOf = (metric: string): Set<string> => new Set([...(series.get(metric) ?? []), ...TARGET_LABELS]);
    for (const { metric, label } of refs.matchers)
      assert.ok(labelsOf(metric).has(label), `${where}: ${metric} has no label ${label}`);
    for (const label of refs.groupings) {
      assert.ok(
        refs.metrics.some((m) => labelsOf(m).has(label)),
        `${where}: grouping by ${label}, which ${refs.metrics.join(', ')} do not carry`,
      );
    }
    for (const m of legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
      assert.ok(refs.groupings.includes(m[1] as string), `${where}: legend {{${m[1]}}} is not kept by the query`);
  }
  // What the issue asks the overview to show.
  for (const metric of [
    'socks4_sessions_total',
    'socks4_handshake_duration_seconds',
    'socks4_relayed_bytes_total',
    'socks4_limit_rejections_total',
    'socks4_snapshot_age_seconds',
    'socks4_limiter_errors_total',
    'socks4_snapshot_errors_total',
    'socks4_report_decisions_total',
  ]) {
    assert.ok(used.has(metric), `the overview shows ${metric}`);
  }
});

test('every TraceQL query names span names and attributes the tracing code sets', async () => {
  const spans = await emittedSpans();
  const { resourceKeys } = await renderChart();
  const d = dashboards.get('socks4-fleet-traces.json') as Dashboard;
  const values = variableValues(d);
  const attributesUsed = new Set<string>();
  for (const { panel, target } of targetsOf(d)) {
    assert.equal(target.queryType, 'traceql', panel.title);
    const query = interpolateGrafana(typeof target.query === 'string' ? target.query : '', values);
    const refs = traceqlRefs(query);
    for (const a of refs.spanAttributes) {
      assert.ok(spans.attributes.has(a), `"${panel.title}": span.${a} is never set by the tracing code`);
      attributesUsed.add(a);
    }
    for (const a of refs.resourceAttributes)
      assert.ok(resourceKeys.has(a), `"${panel.title}": resource.${a} is not a resource attribute of our pods`);
    for (const name of refs.spanNames) assert.ok(spans.names.has(name), `"${panel.title}": no span is named "${name}"`);
    for (const m of query.matchAll(/resource\.service\.name\s*=\s*"([^"]*)"/g)) {
      assert.ok(
        (Object.values(SERVICE_NAMES) as string[]).includes(m[1] as string),
        `"${panel.title}": ${m[1]} is not a service we export as`,
      );
    }
  }
  // The issue: refused sessions and slow handshakes.
  assert.ok(attributesUsed.has(SocksAttr.Reason) && attributesUsed.has(SocksAttr.HandshakeMs));
  // Issue #18: what Report-mode policies would refuse, and which of their rules.
  assert.ok(attributesUsed.has(SocksAttr.ReportAction) && attributesUsed.has(SocksAttr.ReportRule));
  assert.ok(spans.names.has(SpanName.SnapshotEnforce));
  // The reason picker lists exactly the product's reason codes.
  const reasons = d.templating.list.find((v) => v.name === 'reason');
  assert.deepEqual(String(reasons?.query).split(',').sort(), Object.values(Reason).sort());
});

test('error views follow the span status rule: status = error means a proxy failure, refusals are found by reason', () => {
  const d = dashboards.get('socks4-fleet-traces.json') as Dashboard;
  const queryOf = (title: string): string => {
    const target = targetsOf(d).find(({ panel }) => panel.title === title)?.target;
    return typeof target?.query === 'string' ? target.query : '';
  };
  // Session spans are ERROR only for proxy failures, so this view is not flooded by refusals.
  assert.match(queryOf('Proxy failures'), /kind = server && status = error/);
  // Refusals leave the status unset: a view of them must select on the reason, never on status.
  assert.match(queryOf('Refused sessions'), /span\.socks4\.reason =~/);
  assert.doesNotMatch(queryOf('Refused sessions'), /status/);
  for (const { panel, target } of targetsOf(d)) {
    const query = typeof target.query === 'string' ? target.query : '';
    if (/kind = server/.test(query) && /status = error/.test(query))
      assert.equal(panel.title, 'Proxy failures', `${panel.title}: session status = error is proxy failures only`);
  }
});

test("the overview's proxy-failures panel selects exactly the reasons that make a session span ERROR", () => {
  const d = dashboards.get('socks4-fleet-overview.json') as Dashboard;
  const expr = targetsOf(d).find(({ panel }) => panel.title === 'Proxy failures by reason')?.target.expr ?? '';
  const selected = /reason=~"([^"]+)"/.exec(expr)?.[1]?.split('|').sort();
  assert.deepEqual(selected, Object.values(Reason).filter(isProxyFailure).sort());
});

test('the chart renders each dashboard file unchanged into its own ConfigMap', async () => {
  const { configMaps } = await renderChart();
  assert.deepEqual(configMaps.map((c) => c.name).sort(), [
    'r1-socks4-fleet-dashboard-overview',
    'r1-socks4-fleet-dashboard-traces',
  ]);
  for (const file of dashboardFiles) {
    const carried = configMaps.find((c) => file in c.data);
    assert.ok(carried, `${file} is in a ConfigMap`);
    const original = await readFile(path.join(dashboardsDir, file), 'utf8');
    assert.equal(carried.data[file], original.trimEnd(), `${file} is carried byte for byte`);
  }
});

test('the query readers catch what they must', () => {
  assert.deepEqual(promqlRefs('sum by (reason) (rate(socks4_sessions_total{reply!="90", reason!=""}[5m]))'), {
    metrics: ['socks4_sessions_total'],
    matchers: [
      { metric: 'socks4_sessions_total', label: 'reply' },
      { metric: 'socks4_sessions_total', label: 'reason' },
    ],
    groupings: ['reason'],
  });
  assert.deepEqual(promqlRefs('time() - max(socks4_operator_leader)').metrics, ['socks4_operator_leader']);
  assert.deepEqual(promqlRefs('label_values(socks4_active_sessions{namespace=~".*"}, pod)').groupings, ['pod']);
  assert.throws(() => promqlRefs('nosuchfn(socks4_active_sessions)'), /unknown PromQL function/);
  assert.throws(() => interpolateGrafana('rate(x[$nope])', {}), /unknown dashboard variable/);
  const refs = traceqlRefs(
    '{ resource.service.name = "a.b" && kind = server && span.socks4.reason =~ ".+" && name = "socks4 CONNECT" && duration > 250ms }',
  );
  assert.deepEqual(
    [refs.spanAttributes, refs.resourceAttributes, refs.spanNames, refs.kinds],
    [['socks4.reason'], ['service.name'], ['socks4 CONNECT'], ['server']],
  );
  assert.throws(() => traceqlRefs('{ .socks4.reason = "x" }'), /unscoped attribute/);
  assert.throws(() => traceqlRefs('{ kind = sever }'), /unknown span kind/);
  assert.throws(() => traceqlRefs('{ span.a = 1 } | rate()'), /spanset filter|unknown word/);
});
