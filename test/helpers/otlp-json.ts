// Spans as a tracing backend returns them in OTLP JSON (Jaeger's API v3, an OTLP/HTTP export),
// flattened for assertions: attributes as plain objects, enums by the names TraceQL uses.

export type AttributeValue = string | number | boolean | readonly unknown[] | null;

/** One stored span, flattened from OTLP JSON: attributes as a plain object, ids as hex. */
export interface StoredSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** As TraceQL names it: server, client, internal, producer, consumer, unspecified. */
  readonly kind: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly resource: Readonly<Record<string, AttributeValue>>;
  readonly events: readonly { name: string; attributes: Readonly<Record<string, AttributeValue>> }[];
  readonly links: readonly { traceId: string; spanId: string }[];
  /** As TraceQL names it: unset, ok, error. */
  readonly status: string;
  readonly statusMessage: string;
}

type OtlpKeyValue = { key: string; value?: Record<string, unknown> };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: string | number;
  startTimeUnixNano?: string;
  endTimeUnixNano?: string;
  attributes?: OtlpKeyValue[];
  events?: { name: string; attributes?: OtlpKeyValue[] }[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: string | number; message?: string };
};
type OtlpTraces = {
  result?: { resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[] };
};

/** An OTLP JSON AnyValue as a plain value (ints arrive as strings in OTLP JSON). */
function plainValue(value: Record<string, unknown> | undefined): AttributeValue {
  if (value === undefined) return null;
  if ('stringValue' in value) return value.stringValue as string;
  if ('boolValue' in value) return value.boolValue as boolean;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return Number(value.doubleValue);
  if ('arrayValue' in value) {
    const values = (value.arrayValue as { values?: Record<string, unknown>[] }).values ?? [];
    return values.map((v) => plainValue(v));
  }
  return JSON.stringify(value);
}

export function toRecord(list: readonly OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, plainValue(kv.value)]));
}

// OTLP JSON carries enums as integers (opentelemetry-proto: Span.SpanKind, Status.StatusCode).
const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const;
const STATUS_CODES = ['unset', 'ok', 'error'] as const;
const enumName = (names: readonly string[], value: string | number | undefined): string => {
  if (value === undefined) return names[0] as string;
  if (typeof value === 'number') return names[value] ?? String(value);
  return value.replace(/^(SPAN_KIND|STATUS_CODE)_/, '').toLowerCase(); // enum names, from other encoders
};

const nanosToMs = (nanos: string | undefined): number =>
  nanos === undefined ? 0 : Number(BigInt(nanos) / 1000n) / 1000;

/** Every span of an API v3 answer (null = none found). */
export function flattenOtlp(body: unknown): StoredSpan[] {
  const resourceSpans = (body as OtlpTraces | null)?.result?.resourceSpans ?? [];
  return resourceSpans.flatMap((rs) => {
    const resource = toRecord(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map(
        (span): StoredSpan => ({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? '',
          name: span.name,
          kind: enumName(KINDS, span.kind),
          startMs: nanosToMs(span.startTimeUnixNano),
          endMs: nanosToMs(span.endTimeUnixNano),
          attributes: toRecord(span.attributes),
          resource,
          events: (span.events ?? []).map((e) => ({ name: e.name, attributes: toRecord(e.attributes) })),
          links: (span.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          status: enumName(STATUS_CODES, span.status?.code),
          statusMessage: span.status?.message ?? '',
        }),
      ),
    );
  });
}
