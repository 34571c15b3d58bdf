// W3C trace context as a plain string, for places that carry it as data rather than as an HTTP
// header: the operator stores the reconcile's `traceparent` in the snapshot document, and every
// pod links its "snapshot enforce" span to it. Only the API is imported, so the operator can use
// this without loading the SDK.
import { trace, type SpanContext } from '@opentelemetry/api';

// W3C Trace Context §3.2: version-traceid-parentid-flags; future versions may append fields.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** `00-<trace-id>-<span-id>-<flags>` (W3C Trace Context, version 00). */
export function formatTraceparent(ctx: SpanContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The traceparent of the active span, or undefined when there is none (tracing off, no span). */
export function activeTraceparent(): string | undefined {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx !== undefined && trace.isSpanContextValid(ctx) ? formatTraceparent(ctx) : undefined;
}

/** The remote span context a traceparent names, or null when it is malformed or all zeros. */
export function parseTraceparent(value: string): SpanContext | null {
  const m = TRACEPARENT.exec(value.trim());
  if (m === null || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return null;
  const ctx: SpanContext = { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16), isRemote: true };
  return trace.isSpanContextValid(ctx) ? ctx : null;
}
