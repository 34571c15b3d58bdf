// OpenTelemetry export for the proxy, configured only by the standard OTEL_* variables (exporter,
// endpoint, protocol, headers, sampler, resource attributes). Opt-in: with no exporter or endpoint
// configured, nothing is loaded and nothing subscribes, so the session path pays nothing. The SDK
// and this module's own dependencies are imported lazily for the same reason: a proxy without
// tracing never loads them (they cost ~150 ms of startup). Only the small traceparent helpers
// (the API only) load eagerly: `policy push` and the operator use them.
import type { SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Registry } from 'prom-client';

export { activeTraceparent, formatTraceparent, parseTraceparent } from './trace-context.ts';

export const TRACER_NAME = 'socks4-fleet';

type Env = Readonly<Record<string, string | undefined>>;

const listOf = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');

const disabled = (env: Env): boolean => env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';

/**
 * Traces are exported when an exporter is named (OTEL_TRACES_EXPORTER other than none) or an OTLP
 * endpoint is given; not when the SDK is disabled or the sampler can never sample a session.
 * Unlike the SDK's own default (OTLP to localhost), no configuration means no tracing.
 */
export function tracesConfigured(env: Env = process.env): boolean {
  if (disabled(env)) return false;
  const sampler = env.OTEL_TRACES_SAMPLER?.trim();
  if (sampler === 'always_off' || sampler === 'parentbased_always_off') return false;
  const exporters = listOf(env.OTEL_TRACES_EXPORTER);
  if (exporters.length > 0) return !exporters.includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Metrics go out over OTLP only when OTEL_METRICS_EXPORTER names otlp; Prometheus scrapes otherwise. */
export function otlpMetricsConfigured(env: Env = process.env): boolean {
  return !disabled(env) && listOf(env.OTEL_METRICS_EXPORTER).includes('otlp');
}

export interface StartTracingOptions {
  /** service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. */
  serviceName: string;
  serviceVersion?: string;
  /** Leave USERIDs out of span attributes. */
  redactUserIds?: boolean;
  /** The prom-client registry to also push over OTLP when OTEL_METRICS_EXPORTER=otlp. */
  metricsRegistry?: Registry;
  /** Replaces the processors OTEL_TRACES_EXPORTER would build (benchmarks, tests). */
  spanProcessors?: SpanProcessor[];
  /** Receives the SDK's warnings and errors (export failures) unless OTEL_LOG_LEVEL is set. */
  logger?: DiagSink;
  /** Longest wait for the final flush; an unreachable collector must not hold up the exit. */
  shutdownTimeoutMs?: number;
}

/** What the SDK's diagnostics are written to: the pino logger fits. */
export interface DiagSink {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

type Api = typeof import('@opentelemetry/api');

function forwardDiagnostics({ diag, DiagLogLevel }: Api, sink: DiagSink): void {
  // The SDK's error handler hands over whole errors serialized as JSON: keep the message readable.
  const split = (message: string, args: unknown[]): [object, string] => {
    const details = args.map((a) => (a instanceof Error ? a.message : String(a)));
    if (message.startsWith('{')) {
      try {
        const parsed = JSON.parse(message) as { message?: unknown };
        if (typeof parsed.message === 'string')
          return [{ component: 'opentelemetry', err: parsed, details }, parsed.message];
      } catch {}
    }
    return [{ component: 'opentelemetry', details }, message];
  };
  const quiet = (): void => {};
  diag.setLogger(
    {
      error: (message, ...args) => sink.error(...split(message, args)),
      warn: (message, ...args) => sink.warn(...split(message, args)),
      info: quiet,
      debug: quiet,
      verbose: quiet,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}

export interface Tracing {
  readonly tracesEnabled: boolean;
  readonly metricsEnabled: boolean;
  /** Flushes what is buffered and stops export; call after the server drained. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { tracesEnabled: false, metricsEnabled: false, shutdown: async () => {} };

export async function startTracing(options: StartTracingOptions): Promise<Tracing> {
  const env = process.env; // the SDK reads the same variables
  const tracesEnabled = options.spanProcessors !== undefined ? !disabled(env) : tracesConfigured(env);
  const metricsEnabled = options.metricsRegistry !== undefined && otlpMetricsConfigured(env);
  if (!tracesEnabled && !metricsEnabled) return OFF;

  const [api, { defaultResource, resourceFromAttributes }, { subscribeSessionSpans }, { NodeSDK }, metricReaders] =
    await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/resources'),
      import('./session-spans.ts'),
      import('@opentelemetry/sdk-node'),
      metricsEnabled
        ? import('./otlp-metrics.ts').then(async (m) => [
            await m.createOtlpMetricReader(options.metricsRegistry as Registry),
          ])
        : [],
    ]);
  const { context, diag, metrics, propagation, trace } = api;
  if (options.logger !== undefined && !env.OTEL_LOG_LEVEL) forwardDiagnostics(api, options.logger);
  const sdk = new NodeSDK({
    // Our names are the base; detected and OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME win over them.
    resource: defaultResource().merge(
      resourceFromAttributes({
        'service.name': options.serviceName,
        ...(options.serviceVersion === undefined ? {} : { 'service.version': options.serviceVersion }),
      }),
    ),
    instrumentations: [],
    metricReaders,
    logRecordProcessors: [], // logs stay pino JSON on stdout
    ...(tracesEnabled
      ? options.spanProcessors === undefined
        ? {}
        : { spanProcessors: options.spanProcessors }
      : { spanProcessors: [] }),
  });
  sdk.start();
  const unsubscribe = tracesEnabled
    ? subscribeSessionSpans(trace.getTracer(TRACER_NAME, options.serviceVersion), {
        redactUserIds: options.redactUserIds === true,
      })
    : () => {};

  const timeoutMs = options.shutdownTimeoutMs ?? 5000;
  let stopped: Promise<void> | null = null;
  return {
    tracesEnabled,
    metricsEnabled,
    shutdown() {
      stopped ??= (async () => {
        unsubscribe(); // ends any span still open, so the flush below carries it
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            diag.warn(`OpenTelemetry flush still running after ${timeoutMs} ms; giving up on it`);
            resolve();
          }, timeoutMs);
        });
        try {
          await Promise.race([sdk.shutdown(), limit]);
        } catch (error) {
          diag.error('OpenTelemetry shutdown failed', error);
        } finally {
          clearTimeout(timer);
        }
        // Unregister the globals so a later start in this process (tests, benchmarks) takes effect.
        trace.disable();
        metrics.disable();
        propagation.disable();
        context.disable();
        diag.disable();
      })();
      return stopped;
    },
  };
}
