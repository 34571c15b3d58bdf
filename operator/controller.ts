// One leadership term of the operator: a work queue, its workers, and the adapter that carries
// out what operator/reconcile.ts decides. Keys are `namespace/name`, plus SNAPSHOT_KEY for the
// one snapshot every policy feeds: any change queues its policy and the snapshot, and the queue's
// dedupe coalesces a burst of changes into few publishes. After a publish, every policy whose
// finalizer or status is behind is queued again (level-based: nothing depends on which events
// were seen, so a restart or a missed event converges to the same state).
import { SpanKind, SpanStatusCode, trace, type Span, type SpanContext } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Socks4Policy } from '../src/policy/types.ts';
import type { PublishResult } from '../src/rules/publish-snapshot.ts';
import type { SnapshotMeta } from '../src/rules/snapshot-document.ts';
import { activeTraceparent } from '../src/telemetry/trace-context.ts';
import { apiStatusCode, describeApiError, type PolicyApi } from './kube-api.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { PolicyStore } from './policy-informer.ts';
import { WorkQueue, type WorkQueueOptions } from './queue.ts';
import {
  assessPolicy,
  isDeleting,
  needsWork,
  planPolicy,
  planSnapshot,
  recordPublished,
  type ObservedPolicy,
  type PublishedSnapshot,
} from './reconcile.ts';
import { policyId } from '../src/policy/types.ts';
import { asError } from '../src/errors.ts';

/** Not a valid `namespace/name`: cannot collide with a policy key. */
export const SNAPSHOT_KEY = '(snapshot)';
/** How long a write we made may take to come back through the watch before we look again. */
const EXPECTATION_TTL_MS = 5_000;
/** Publish spans remembered for the policy reconciles that link to them (the newest are kept). */
const PUBLISH_SPANS_KEPT = 64;

export interface ControllerOptions {
  readonly store: PolicyStore;
  readonly api: PolicyApi;
  readonly publish: (policies: readonly Socks4Policy[], meta: SnapshotMeta) => Promise<PublishResult>;
  /** The snapshot the fleet holds now (read back from Redis), or null when there is none. */
  readonly readPublished: () => Promise<PublishedSnapshot | null>;
  readonly isLeader: () => boolean;
  readonly identity: string;
  readonly workers: number;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  readonly queue?: WorkQueueOptions;
  readonly now?: () => Date;
}

const tracer = trace.getTracer('socks4-fleet-operator');

/** Span names and attributes of the operator's traces: one trace per reconcile. */
export const OperatorSpan = {
  ReconcilePolicy: 'reconcile policy',
  ReconcileSnapshot: 'reconcile snapshot',
  /** Child of the snapshot reconcile; its traceparent rides in the snapshot for the pods to link. */
  Publish: 'redis publish snapshot',
  PatchStatus: 'kube patch status',
} as const;
export const OperatorAttr = {
  Key: 'socks4.key',
  Kind: 'socks4.reconcile.kind',
  Outcome: 'socks4.reconcile.outcome',
  PolicyName: 'socks4.policy.name',
  Namespace: 'k8s.namespace.name',
  Generation: 'socks4.policy.generation',
  SnapshotVersion: 'socks4.snapshot.version',
  SnapshotChanged: 'socks4.snapshot.changed',
  PolicyCount: 'socks4.snapshot.policies',
} as const;

/** Runs `fn` in a child span of the active one; errors mark the span and propagate. */
async function inSpan<T>(name: string, kind: SpanKind, fn: (span: Span) => Promise<T>): Promise<T> {
  return await tracer.startActiveSpan(name, { kind }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(asError(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: describeApiError(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

export class Controller {
  readonly #options: ControllerOptions;
  readonly #queue: WorkQueue;
  readonly #workers: Promise<void>[] = [];
  // What this term published; null until the first publish (then deletions may proceed).
  #published: PublishedSnapshot | null = null;
  #seed: PublishedSnapshot | null | undefined;
  // What the last publish was made of, and whether the next snapshot reconcile must write to
  // Redis even if that did not change (resync, Redis reconnected: Redis may have lost it).
  #publishedFrom = '';
  #forcePublish = true;
  // Writes whose watch event has not arrived yet: key → resourceVersion we wrote over.
  readonly #expectations = new Map<string, { resourceVersion: string | undefined; at: number }>();
  // The publish span of each version this term published first: a policy's reconcile, which
  // patches the status naming that version, links to it (the two are separate traces).
  readonly #publishSpans = new Map<string, SpanContext>();

  constructor(options: ControllerOptions) {
    this.#options = options;
    this.#queue = new WorkQueue(options.queue);
  }

  get queueDepth(): number {
    return this.#queue.length;
  }

  get published(): PublishedSnapshot | null {
    return this.#published;
  }

  start(): void {
    for (let i = 0; i < this.#options.workers; i++) this.#workers.push(this.#work());
    this.enqueueAll();
  }

  /** Lets in-flight reconciles finish; queued work is dropped (the next term lists afresh). */
  async stop(): Promise<void> {
    this.#queue.shutDown();
    await Promise.all(this.#workers);
  }

  enqueue(key: string): void {
    this.#queue.add(key);
    this.#queue.add(SNAPSHOT_KEY);
  }

  /** Re-checks everything, and publishes even an unchanged snapshot (Redis may have lost it). */
  enqueueAll(): void {
    this.#forcePublish = true;
    for (const obj of this.#options.store.list()) this.#queue.add(policyId(obj));
    this.#queue.add(SNAPSHOT_KEY);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === null) return;
      const kind = key === SNAPSHOT_KEY ? 'snapshot' : 'policy';
      const timer = this.#options.metrics.reconcileSeconds.startTimer({ kind });
      const name = kind === 'snapshot' ? OperatorSpan.ReconcileSnapshot : OperatorSpan.ReconcilePolicy;
      await tracer.startActiveSpan(name, async (span) => {
        span.setAttributes({ [OperatorAttr.Key]: key, [OperatorAttr.Kind]: kind });
        try {
          const outcome =
            key === SNAPSHOT_KEY ? await this.#reconcileSnapshot(span) : await this.#reconcilePolicy(key, span);
          span.setAttribute(OperatorAttr.Outcome, outcome);
          this.#queue.forget(key);
          this.#options.metrics.reconciles.inc({ kind, result: 'ok' });
        } catch (error) {
          const retryInMs = this.#queue.addRateLimited(key);
          this.#options.metrics.reconciles.inc({ kind, result: 'error' });
          span.setAttribute(OperatorAttr.Outcome, 'error');
          span.recordException(asError(error));
          span.setStatus({ code: SpanStatusCode.ERROR, message: describeApiError(error) });
          this.#options.logger.warn(
            { key, retryInMs, failures: this.#queue.failures(key), err: describeApiError(error) },
            'reconcile failed; retrying',
          );
        } finally {
          span.end();
          timer();
          this.#queue.done(key);
        }
      });
    }
  }

  /** Returns the outcome the reconcile span records. */
  async #reconcileSnapshot(span: Span): Promise<string> {
    const { store, logger, metrics } = this.#options;
    if (!this.#options.isLeader()) return 'not-leader';
    // Seed "what the fleet holds" once per term, so a policy that is invalid now keeps the
    // version an earlier operator published instead of silently leaving the fleet.
    if (this.#published === null && this.#seed === undefined) this.#seed = await this.#options.readPublished();
    const observed = store.list();
    const desired = planSnapshot(observed, this.#published ?? this.#seed ?? null);
    // Most events (our own status writes above all) change nothing the fleet sees: skip the
    // compile and the Redis round trip for them.
    const from = [...desired.entries].map(([key, e]) => `${key} ${e.uid} ${e.generation} ${e.kept}`).join('\n');
    if (!this.#forcePublish && this.#published !== null && from === this.#publishedFrom) return 'up-to-date';
    if (!this.#options.isLeader()) return 'not-leader'; // a stale leader must never publish
    const forced = this.#forcePublish;
    this.#forcePublish = false; // (an enqueueAll() during the publish sets it again)
    let result: PublishResult;
    try {
      result = await inSpan(OperatorSpan.Publish, SpanKind.PRODUCER, async (publishSpan) => {
        // The publish span's context rides in the snapshot: each pod's enforce span links to it.
        const traceparent = activeTraceparent();
        const published = await this.#options.publish(desired.policies, {
          source: `operator ${this.#options.identity}`,
          ...(traceparent === undefined ? {} : { traceparent }),
        });
        if (!this.#publishSpans.has(published.version)) {
          this.#publishSpans.set(published.version, publishSpan.spanContext());
          if (this.#publishSpans.size > PUBLISH_SPANS_KEPT)
            this.#publishSpans.delete(this.#publishSpans.keys().next().value as string);
        }
        publishSpan.setAttributes({
          'messaging.system': 'redis',
          [OperatorAttr.SnapshotVersion]: published.version,
          [OperatorAttr.SnapshotChanged]: published.changed,
          [OperatorAttr.PolicyCount]: published.policyCount,
        });
        return published;
      });
    } catch (error) {
      metrics.publishes.inc({ result: 'error' });
      this.#forcePublish ||= forced;
      throw error;
    }
    const byKey = new Map(observed.map((obj) => [policyId(obj), obj]));
    this.#published = recordPublished(desired, result.version, byKey);
    this.#publishedFrom = from;
    metrics.publishes.inc({ result: result.changed ? 'published' : 'unchanged' });
    metrics.snapshotPolicies.set(result.policyCount);
    metrics.snapshotRules.set(result.ruleCount);
    metrics.snapshotPublishedAt.set(Date.now() / 1000);
    metrics.refusedPolicies.set(observed.filter((obj) => !isDeleting(obj) && !assessPolicy(obj).ok).length);
    if (result.changed) {
      logger.info(
        {
          version: result.version,
          previous: result.previous || null,
          policies: result.policyCount,
          rules: result.ruleCount,
        },
        'published rules snapshot',
      );
    }
    const now = this.#now();
    for (const obj of observed) {
      if (needsWork(planPolicy(obj, this.#published, now))) this.#queue.add(policyId(obj));
    }
    span.setAttributes({
      [OperatorAttr.SnapshotVersion]: result.version,
      [OperatorAttr.PolicyCount]: result.policyCount,
    });
    return result.changed ? 'published' : 'unchanged';
  }

  /** Returns the outcome the reconcile span records. */
  async #reconcilePolicy(key: string, span: Span): Promise<string> {
    const { store, api, logger } = this.#options;
    if (!this.#options.isLeader()) return 'not-leader'; // this term is ending; the next leader lists afresh
    const obj = store.get(key);
    if (obj === undefined) {
      this.#expectations.delete(key);
      return 'gone';
    }
    span.setAttributes({
      ...(obj.metadata.namespace === undefined ? {} : { [OperatorAttr.Namespace]: obj.metadata.namespace }),
      [OperatorAttr.PolicyName]: obj.metadata.name ?? '',
      ...(obj.metadata.generation === undefined ? {} : { [OperatorAttr.Generation]: obj.metadata.generation }),
    });
    if (this.#awaitingOwnWrite(key, obj)) return 'awaiting-own-write';
    const plan = planPolicy(obj, this.#published, this.#now());
    let outcome = 'up-to-date';
    try {
      switch (plan.action) {
        case 'add-finalizer':
          await api.addFinalizer(obj);
          this.#expect(key, obj);
          return 'finalizer-added';
        case 'await-snapshot':
          this.#queue.add(SNAPSHOT_KEY);
          return 'awaiting-snapshot';
        case 'remove-finalizer':
          await api.removeFinalizer(obj);
          logger.info({ policy: key }, 'policy left the snapshot; finalizer removed');
          return 'finalizer-removed';
        case 'none':
          break;
      }
      if (plan.status !== null) {
        const status = plan.status;
        const carriedBy =
          status.snapshotVersion === undefined ? undefined : this.#publishSpans.get(status.snapshotVersion);
        if (carriedBy !== undefined) span.addLink({ context: carriedBy });
        await inSpan(OperatorSpan.PatchStatus, SpanKind.CLIENT, () => api.patchStatus(obj, status));
        this.#expect(key, obj);
        outcome = plan.event === null ? 'status-patched' : 'refused';
      }
    } catch (error) {
      if (apiStatusCode(error) === 404) return 'gone'; // deleted meanwhile: its delete event re-queues
      throw error;
    }
    if (plan.event !== null) {
      logger.warn(
        { policy: key, generation: obj.metadata.generation, reason: plan.event.reason, detail: plan.event.message },
        'policy refused',
      );
      // An event is a courtesy: failing to record one must not fail (and repeat) the reconcile.
      await api.recordEvent(obj, plan.event).catch((error: unknown) => {
        logger.warn({ policy: key, err: describeApiError(error) }, 'could not record event');
      });
    }
    return outcome;
  }

  #expect(key: string, obj: ObservedPolicy): void {
    this.#expectations.set(key, { resourceVersion: obj.metadata.resourceVersion, at: performance.now() });
  }

  // The cache still shows the object as it was before our own write: acting on it would repeat
  // the write. The watch event will queue the key again; a late check covers a lost event.
  #awaitingOwnWrite(key: string, obj: ObservedPolicy): boolean {
    const expected = this.#expectations.get(key);
    if (expected === undefined) return false;
    const age = performance.now() - expected.at;
    if (expected.resourceVersion === obj.metadata.resourceVersion && age < EXPECTATION_TTL_MS) {
      this.#queue.addAfter(key, EXPECTATION_TTL_MS - age);
      return true;
    }
    this.#expectations.delete(key);
    return false;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }
}
