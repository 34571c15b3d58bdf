// A real tracing backend for tests: Jaeger v2 (bin/jaeger, built by `make tools` from its Go
// module) on loopback with in-memory storage, an OTLP receiver (HTTP and gRPC) and the query API.
// Processes under test export to it with the standard OTEL_* variables (`otelEnv`), and the test
// reads back what Jaeger stored through its public API v3 (OTLP JSON), exactly what a user's UI
// would show. Any exporter in the product (proxy, `policy push`, operator) can share one backend.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flattenOtlp, type StoredSpan } from './otlp-json.ts';
import { freePort, repoRoot } from './spawn.ts';

export type { AttributeValue, StoredSpan } from './otlp-json.ts';

export const JAEGER_BIN = path.join(repoRoot, 'bin', 'jaeger');
/** The collector's own "all components started" line. */
const READY_LINE = 'Everything is ready';
const START_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface TraceQuery {
  readonly service: string;
  /** Span name (Jaeger: operation). */
  readonly operation?: string;
  /** Only traces that started after this (default: the backend's start). */
  readonly since?: Date;
}

export interface JaegerBackend {
  /** OTLP/HTTP base URL, the value for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly otlpHttpUrl: string;
  /** OTLP/gRPC endpoint (OTEL_EXPORTER_OTLP_PROTOCOL=grpc). */
  readonly otlpGrpcUrl: string;
  /** Jaeger query service (UI and /api/v3). */
  readonly queryUrl: string;
  /** OTEL_* variables that make a process export every trace here right away. */
  otelEnv(extra?: Record<string, string>): Record<string, string>;
  services(): Promise<string[]>;
  /** Spans of every trace matching the query ([] when none). */
  findSpans(query: TraceQuery): Promise<StoredSpan[]>;
  /** Spans of one trace ([] when Jaeger does not have it). */
  getTrace(traceId: string): Promise<StoredSpan[]>;
  /** The raw /api/v3 answer for a trace (OTLP JSON), as a user would see it. */
  getTraceJson(traceId: string): Promise<unknown>;
  /** Polls findSpans (bounded) until `done` accepts the spans; throws with what was seen if never. */
  waitForSpans(query: TraceQuery, done: (spans: StoredSpan[]) => boolean, timeoutMs?: number): Promise<StoredSpan[]>;
  /** Jaeger's own log so far. */
  output(): string;
  stop(): Promise<void>;
}

export function jaegerConfig(ports: {
  otlpHttp: number;
  otlpGrpc: number;
  queryHttp: number;
  queryGrpc: number;
}): string {
  // No batch processor: a span is queryable as soon as the receiver answered the export. Internal
  // metrics off, so Jaeger opens no port beyond these four.
  return `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    # Jaeger traces its own queries to localhost:4317 by default; on stop it would retry that
    # export for 5 s (and could land in another test's receiver).
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:${ports.queryHttp}
    grpc:
      endpoint: 127.0.0.1:${ports.queryGrpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${ports.otlpHttp}
      grpc:
        endpoint: 127.0.0.1:${ports.otlpGrpc}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

async function spawnJaeger(
  dir: string,
): Promise<{ child: ChildProcess; ports: Parameters<typeof jaegerConfig>[0]; log: () => string }> {
  const ports = {
    otlpHttp: await freePort(),
    otlpGrpc: await freePort(),
    queryHttp: await freePort(),
    queryGrpc: await freePort(),
  };
  const configFile = path.join(dir, 'jaeger.yaml');
  writeFileSync(configFile, jaegerConfig(ports));
  // The test runner's own OTEL_* variables (if any) are not Jaeger's to act on.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const child = spawn(JAEGER_BIN, ['--config', `file:${configFile}`], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let log = '';
  const onData = (chunk: Buffer): void => void (log += chunk.toString());
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!log.includes(READY_LINE)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`jaeger exited (${child.exitCode ?? child.signalCode}):\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`jaeger not ready within ${START_TIMEOUT_MS} ms:\n${log}`);
    }
    await sleep(POLL_MS);
  }
  return { child, ports, log: () => log };
}

/** Starts bin/jaeger on free loopback ports; `stop()` ends it and removes its files. */
export async function startJaeger(): Promise<JaegerBackend> {
  if (!existsSync(JAEGER_BIN)) throw new Error(`${JAEGER_BIN} is missing: run make tools`);
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-jaeger-'));
  const startedAt = new Date(Date.now() - 1000);
  let started: Awaited<ReturnType<typeof spawnJaeger>> | null = null;
  // Another process may take a probed port before Jaeger binds it: try again with new ones.
  for (let attempt = 1; started === null; attempt++) {
    try {
      started = await spawnJaeger(dir);
    } catch (error) {
      if (attempt >= 3 || !/address already in use/.test((error as Error).message)) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const { child, ports, log } = started;
  const queryUrl = `http://127.0.0.1:${ports.queryHttp}`;

  const getJson = async (pathAndQuery: string): Promise<unknown> => {
    const { status, text } = await httpGet(`${queryUrl}${pathAndQuery}`);
    if (status === 404) return null; // API v3: "No traces found"
    if (status !== 200) throw new Error(`GET ${pathAndQuery}: ${status} ${text}`);
    return JSON.parse(text);
  };
  const findSpans = async (query: TraceQuery): Promise<StoredSpan[]> => {
    const params = new URLSearchParams({
      'query.service_name': query.service,
      'query.start_time_min': (query.since ?? startedAt).toISOString(),
      'query.start_time_max': new Date(Date.now() + 60_000).toISOString(),
      'query.num_traces': '100',
    });
    if (query.operation !== undefined) params.set('query.operation_name', query.operation);
    return flattenOtlp(await getJson(`/api/v3/traces?${params}`));
  };

  let stopped: Promise<void> | null = null;
  return {
    otlpHttpUrl: `http://127.0.0.1:${ports.otlpHttp}`,
    otlpGrpcUrl: `http://127.0.0.1:${ports.otlpGrpc}`,
    queryUrl,
    otelEnv(extra = {}) {
      return {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${ports.otlpHttp}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
        OTEL_BSP_SCHEDULE_DELAY: '100', // export within a tenth of a second, not 5 s
        OTEL_NODE_RESOURCE_DETECTORS: 'env', // no host/process probing in every child
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
        OTEL_LOG_LEVEL: 'warn',
        ...extra,
      };
    },
    async services() {
      const body = (await getJson('/api/v3/services')) as { services?: string[] } | null;
      return [...(body?.services ?? [])].sort();
    },
    findSpans,
    async getTrace(traceId) {
      return flattenOtlp(await getJson(`/api/v3/traces/${traceId}`));
    },
    getTraceJson: (traceId) => getJson(`/api/v3/traces/${traceId}`),
    async waitForSpans(query, done, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let spans: StoredSpan[] = [];
      for (;;) {
        spans = await findSpans(query);
        if (done(spans)) return spans;
        if (Date.now() > deadline) {
          throw new Error(
            `Jaeger did not return the expected spans for ${JSON.stringify(query)} within ${timeoutMs} ms; got: ${spans.map((s) => s.name).join(', ') || 'none'}`,
          );
        }
        await sleep(POLL_MS * 2);
      }
    },
    output: log,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await once(child, 'exit');
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** One GET on a connection of its own, so no pooled socket outlives the backend or the test. */
function httpGet(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, headers: { connection: 'close' }, timeout: 10_000 }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url}: no answer within 10 s`)));
    request.on('error', reject);
  });
}
