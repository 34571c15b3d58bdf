// A real SDK tracer provider with an in-memory exporter and a processor that counts started and
// ended spans, subscribed to the core's channels the way the proxy subscribes.
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpanContext } from '@opentelemetry/api';
import {
  AlwaysOnSampler,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { subscribeSessionSpans } from '../../src/telemetry/session-spans.ts';

export interface SpanHarness {
  readonly exporter: InMemorySpanExporter;
  readonly counts: { started: number; ended: number };
  spans(): ReadableSpan[];
  /** Session (SERVER) spans, oldest first. */
  sessionSpans(): ReadableSpan[];
  childrenOf(parent: ReadableSpan): ReadableSpan[];
  /** Waits (bounded) until `n` session spans were exported; returns them. */
  waitForSessions(n: number, timeoutMs?: number): Promise<ReadableSpan[]>;
  unsubscribe(): void;
  close(): Promise<void>;
}

export function createSpanHarness(options: { redactUserIds?: boolean; sampler?: Sampler } = {}): SpanHarness {
  const exporter = new InMemorySpanExporter();
  const counts = { started: 0, ended: 0 };
  const counter: SpanProcessor = {
    onStart: () => void counts.started++,
    onEnd: () => void counts.ended++,
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const provider = new TracerProvider({
    sampler: options.sampler ?? new AlwaysOnSampler(),
    spanProcessors: [counter, new SimpleSpanProcessor({ exporter })],
  });
  const unsubscribe = subscribeSessionSpans(provider.getTracer('test'), {
    redactUserIds: options.redactUserIds === true,
  });
  let subscribed = true;
  const sessionSpans = (): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.kind === 1 /* SERVER */);
  const sameSpan = (a: SpanContext | undefined, b: SpanContext): boolean =>
    a?.spanId === b.spanId && a.traceId === b.traceId;
  return {
    exporter,
    counts,
    spans: () => exporter.getFinishedSpans(),
    sessionSpans,
    childrenOf: (parent) =>
      exporter.getFinishedSpans().filter((s) => sameSpan(s.parentSpanContext, parent.spanContext())),
    async waitForSessions(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (sessionSpans().length < n && Date.now() < deadline) await sleep(5);
      return sessionSpans();
    },
    unsubscribe() {
      if (subscribed) unsubscribe();
      subscribed = false;
    },
    async close() {
      if (subscribed) unsubscribe();
      subscribed = false;
      await provider.shutdown();
    },
  };
}

/** Attributes of a span as a plain object, for deepEqual-style checks. */
export const attrs = (span: ReadableSpan): Record<string, unknown> => ({ ...span.attributes });

/** [seconds, nanos] → ms, for ordering checks. */
export const ms = (t: readonly [number, number]): number => t[0] * 1000 + t[1] / 1e6;
