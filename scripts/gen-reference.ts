// Generates docs/reference.md from the code: the duration table, every Socks4Policy field (from
// the CRD schema), every reason code (registry, reply byte, span status, help), every metric (the
// registries themselves), span names and attributes, and every log message with its fields (by
// feeding the logger the core's events). `make generate` (or `make docs`) rewrites the file;
// test/generate/ fails when it is stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createOperatorMetrics } from '../operator/metrics.ts';
import { formatMs } from '../src/cli/args.ts';
import { DURATIONS, type DurationFlag } from '../src/cli/durations.ts';
import { isProxyFailure, Reason } from '../src/errors.ts';
import { REASON_HELP } from '../src/reason-help.ts';
import { replyCodeFor } from '../src/server/session.ts';
import { channels, type SessionInfo } from '../src/telemetry/events.ts';
import { logEvents } from '../src/telemetry/logging.ts';
import { createProxyMetrics } from '../src/telemetry/metrics.ts';
import { SocksAttr, SpanEventName, SpanName } from '../src/telemetry/session-spans.ts';
import { POLICY_SPEC } from '../src/policy/schema.ts';
import { toOpenApi } from './gen-crds.ts';
import type { GeneratedFile } from './generated.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
export const REFERENCE_FILE = 'docs/reference.md';
export const REFERENCE_PATH = path.join(ROOT, REFERENCE_FILE);

type Schema = {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
};

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function range(s: Schema): string {
  const parts: string[] = [];
  if (s.enum !== undefined) parts.push(s.enum.map(String).join(', '));
  if (s.minimum !== undefined || s.maximum !== undefined) parts.push(`${s.minimum ?? ''}–${s.maximum ?? ''}`);
  if (s.minItems !== undefined || s.maxItems !== undefined) parts.push(`${s.minItems ?? 0}–${s.maxItems ?? '∞'} items`);
  if (s.maxLength !== undefined) parts.push(`≤ ${s.maxLength} chars`);
  return parts.join('; ');
}

function policyFields(): string[] {
  const spec = toOpenApi(POLICY_SPEC) as Schema;
  const rows: string[] = [];
  const walk = (s: Schema, at: string, required: boolean): void => {
    const type = s.type === 'array' ? `[]${s.items?.type ?? ''}` : (s.type ?? '');
    const bounds = [range(s), s.type === 'array' && s.items !== undefined ? range(s.items) : '']
      .filter((x) => x !== '')
      .join('; ');
    const def = s.default === undefined ? (required ? 'required' : '') : `\`${JSON.stringify(s.default)}\``;
    rows.push(
      `| \`${at}\` | ${type} | ${def} | ${cell(bounds)} | ${cell(s.description ?? s.items?.description ?? '')} |`,
    );
    const object = s.type === 'array' ? s.items : s;
    const suffix = s.type === 'array' ? '[]' : '';
    for (const [key, child] of Object.entries(object?.properties ?? {}))
      walk(child, `${at}${suffix}.${key}`, object?.required?.includes(key) ?? false);
  };
  walk(spec, 'spec', true);
  return ['| field | type | default | range | meaning |', '|---|---|---|---|---|', ...rows];
}

function durations(): string[] {
  return [
    '| flag | default | 0 | minimum | meaning |',
    '|---|---|---|---|---|',
    ...(Object.keys(DURATIONS) as DurationFlag[]).map((flag) => {
      const s: (typeof DURATIONS)[DurationFlag] = DURATIONS[flag];
      return `| \`--${flag}\` | ${s.default} | ${s.off === null ? 'refused' : `off: ${s.off}`} | ${formatMs(s.minMs)} | ${cell(s.help)} |`;
    }),
  ];
}

function reasons(): string[] {
  return [
    '| reason | reply | span status | meaning |',
    '|---|---|---|---|',
    ...Object.values(Reason).map(
      (r) =>
        `| \`${r}\` | ${r === Reason.BadVersion || r === Reason.ProxyHeaderInvalid ? 'none (closed)' : replyCodeFor(r)} | ${isProxyFailure(r) ? 'ERROR' : 'unset'} | ${cell(REASON_HELP[r])} |`,
    ),
  ];
}

async function metrics(): Promise<string[]> {
  const proxy = createProxyMetrics({ activeSessions: () => 0, snapshot: () => null });
  const operator = createOperatorMetrics({ queueDepth: () => 0, isLeader: () => false, watchedPolicies: () => 0 });
  const rows: string[] = [];
  for (const [who, registry] of [
    ['proxy', proxy.registry],
    ['operator', operator.registry],
  ] as const) {
    for (const m of registry.getMetricsAsArray()) {
      const metric = m as unknown as { name: string; help: string; type: string; labelNames?: string[] };
      if (!metric.name.startsWith('socks4_')) continue;
      rows.push(
        `| \`${metric.name}\` | ${who} | ${metric.type} | ${(metric.labelNames ?? []).join(', ')} | ${cell(metric.help)} |`,
      );
    }
  }
  proxy.close();
  return ['| metric | from | type | labels | meaning |', '|---|---|---|---|---|', ...rows.sort()];
}

function spans(): string[] {
  return [
    `Span names: ${Object.values(SpanName)
      .map((n) => `\`${n}\``)
      .join(', ')}; events: ${Object.values(SpanEventName)
      .map((n) => `\`${n}\``)
      .join(', ')}.`,
    '',
    '| attribute | constant |',
    '|---|---|',
    ...Object.entries(SocksAttr).map(([k, v]) => `| \`${v}\` | SocksAttr.${k} |`),
    '| `error.type` | the reason, on every refused session and failed phase |',
  ];
}

/** Feeds the logger one of each event the core announces and lists the lines it writes. */
function logLines(): string[] {
  const seen = new Map<string, { level: string; fields: Set<string> }>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk
        .toString()
        .split('\n')
        .filter((l) => l !== '')) {
        const { level, msg, time: _t, pid: _p, ...fields } = JSON.parse(line) as Record<string, unknown>;
        const key = String(msg).replace(/\d+ of \d+/, 'N of M');
        const entry = seen.get(key) ?? { level: String(level), fields: new Set<string>() };
        for (const f of Object.keys(fields)) entry.fields.add(f);
        seen.set(key, entry);
      }
      done();
    },
  });
  const logger = pino({ level: 'debug', base: undefined, formatters: { level: (label) => ({ level: label }) } }, sink);
  const stop = logEvents(logger);
  const session = (over: Partial<SessionInfo>): SessionInfo => ({
    id: 's',
    startedAt: performance.now(),
    clientAddress: '10.0.0.1',
    clientPort: 1,
    localAddress: '10.0.0.2',
    localPort: 1080,
    state: 'closed',
    command: 'connect',
    userId: 'u',
    host: null,
    destIp: '10.0.0.3',
    destPort: 443,
    ruleId: 'ns/p/r',
    namespace: null,
    tier: 'Namespace',
    snapshotVersion: 'v',
    replyCode: 90,
    reason: null,
    closeCause: 'closed',
    handshakeMs: 1,
    bytesFromClient: 0,
    bytesToClient: 0,
    ...over,
  });
  channels.sessionStart.publish(session({ state: 'handshake' }));
  channels.sessionPhase.publish({ session: session({}), phase: 'dns', startedAt: 0, endedAt: 1, error: null });
  channels.sessionEnd.publish(session({}));
  channels.sessionEnd.publish(session({ closeCause: Reason.Draining }));
  channels.sessionEnd.publish(session({ replyCode: 91, reason: Reason.RuleDenied, closeCause: Reason.RuleDenied }));
  channels.snapshotLoaded.publish({ source: 'file', version: 'a', ruleCount: 4, policyCount: 1, loadedAt: 0 });
  channels.snapshotLoaded.publish({ source: 'file', version: 'b', ruleCount: 1, policyCount: 1, loadedAt: 0 });
  channels.snapshotLoaded.publish({ source: 'redis', version: 'c', ruleCount: 0, policyCount: 0, loadedAt: 0 });
  channels.snapshotError.publish({ source: 'file', error: new Error('x'), keeping: 'b' });
  channels.snapshotError.publish({ source: 'redis', error: new Error('x'), keeping: null });
  channels.limiterError.publish({ error: new Error('x') });
  channels.connectionRefused.publish({ reason: Reason.TooManySessions });
  stop();
  logger.flush();
  return [
    '| level | message | fields |',
    '|---|---|---|',
    ...[...seen].map(
      ([msg, e]) => `| ${e.level} | ${cell(msg)} | ${[...e.fields].map((f) => `\`${f}\``).join(', ')} |`,
    ),
  ];
}

export async function renderReference(): Promise<string> {
  const metricRows = await metrics();
  const logs = logLines();
  await new Promise((resolve) => setImmediate(resolve));
  return [
    '<!-- Generated by scripts/gen-reference.ts from the code: do not edit by hand; run `make generate`. -->',
    '',
    '# socks4-fleet reference',
    '',
    'For "why was my request refused", start with [troubleshooting.md](troubleshooting.md).',
    '',
    '## Durations',
    '',
    'Every duration carries a unit (`500ms`, `10s`, `2m`, `1h`); a bare number is refused. `0` turns a setting off only where this table says so.',
    '',
    ...durations(),
    '',
    '## Socks4Policy fields (`socks4-fleet.io/v1alpha1`)',
    '',
    'From the schema definition (`src/policy/schema.ts`) that the CRD (`deploy/crd/socks4policies.yaml`) is generated from; the proxy and the operator validate the same rules.',
    '',
    ...policyFields(),
    '',
    '## Reasons',
    '',
    'Stable codes in logs (`reason`, `closeCause`), spans (`socks4.reason`, `error.type`) and the `reason` metric label. A session span is ERROR only where the proxy failed to do what policy allowed; every other refusal leaves the status unset (OpenTelemetry SERVER span conventions).',
    '',
    ...reasons(),
    '',
    '## Metrics',
    '',
    ...metricRows,
    '',
    '## Spans',
    '',
    ...spans(),
    '',
    '## Log lines',
    '',
    'JSON lines (pino); besides these fields every line has `level`, `time`, `pid` and `msg`.',
    '',
    ...logs,
    '',
  ].join('\n');
}

export async function renderReferenceFile(): Promise<GeneratedFile> {
  return { path: REFERENCE_FILE, content: await renderReference(), generator: 'scripts/gen-reference.ts' };
}

if (import.meta.main) {
  writeFileSync(REFERENCE_PATH, await renderReference());
  process.stdout.write(`wrote ${path.relative(process.cwd(), REFERENCE_PATH)}\n`);
}
