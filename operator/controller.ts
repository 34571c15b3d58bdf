// One leadership term of the operator: a work queue, its workers, and the adapter that carries
// out what operator/reconcile.ts decides. Keys are `namespace/name`, plus SNAPSHOT_KEY for the
// one snapshot every policy feeds: any change queues its policy and the snapshot, and the queue's
// dedupe coalesces a burst of changes into few publishes. After a publish, every policy whose
// finalizer or status is behind is queued again (level-based: nothing depends on which events
// were seen, so a restart or a missed event converges to the same state).
import { context, propagation, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Socks4Policy } from '../src/policy/types.ts';
import type { PublishResult } from '../src/redis/publish.ts';
import type { SnapshotMeta } from '../src/redis/snapshot-document.ts';
import { apiStatusCode, describeApiError, type PolicyApi } from './kube-api.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { PolicyStore } from './policy-informer.ts';
import { WorkQueue, type WorkQueueOptions } from './queue.ts';
import {
  assessPolicy, isDeleting, needsWork, planPolicy, planSnapshot, policyKey, recordPublished,
  type ObservedPolicy, type PublishedSnapshot,
} from './reconcile.ts';

/** Not a valid `namespace/name`: cannot collide with a policy key. */
export const SNAPSHOT_KEY = '(snapshot)';
/** How long a write we made may take to come back through the watch before we look again. */
const EXPECTATION_TTL_MS = 5_000;

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
    for (const obj of this.#options.store.list()) this.#queue.add(policyKey(obj));
    this.#queue.add(SNAPSHOT_KEY);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === null) return;
      const kind = key === SNAPSHOT_KEY ? 'snapshot' : 'policy';
      const timer = this.#options.metrics.reconcileSeconds.startTimer({ kind });
      await tracer.startActiveSpan(`reconcile ${kind}`, async (span) => {
        span.setAttribute('socks4.key', key);
        try {
          if (key === SNAPSHOT_KEY) await this.#reconcileSnapshot();
          else await this.#reconcilePolicy(key);
          this.#queue.forget(key);
          this.#options.metrics.reconciles.inc({ kind, result: 'ok' });
        } catch (error) {
          const retryInMs = this.#queue.addRateLimited(key);
          this.#options.metrics.reconciles.inc({ kind, result: 'error' });
          span.recordException(error as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: describeApiError(error) });
          this.#options.logger.warn({ key, retryInMs, failures: this.#queue.failures(key), err: describeApiError(error) }, 'reconcile failed; retrying');
        } finally {
          span.end();
          timer();
          this.#queue.done(key);
        }
      });
    }
  }

  async #reconcileSnapshot(): Promise<void> {
    const { store, logger, metrics } = this.#options;
    if (!this.#options.isLeader()) return;
    // Seed "what the fleet holds" once per term, so a policy that is invalid now keeps the
    // version an earlier operator published instead of silently leaving the fleet.
    if (this.#published === null && this.#seed === undefined) this.#seed = await this.#options.readPublished();
    const observed = store.list();
    const desired = planSnapshot(observed, this.#published ?? this.#seed ?? null);
    // Most events (our own status writes above all) change nothing the fleet sees: skip the
    // compile and the Redis round trip for them.
    const from = [...desired.entries].map(([key, e]) => `${key} ${e.uid} ${e.generation} ${e.kept}`).join('\n');
    if (!this.#forcePublish && this.#published !== null && from === this.#publishedFrom) return;
    if (!this.#options.isLeader()) return; // a stale leader must never publish
    const forced = this.#forcePublish;
    this.#forcePublish = false; // (an enqueueAll() during the publish sets it again)
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    let result: PublishResult;
    try {
      result = await this.#options.publish(desired.policies, {
        source: `operator ${this.#options.identity}`,
        ...(carrier.traceparent === undefined ? {} : { traceparent: carrier.traceparent }),
      });
    } catch (error) {
      metrics.publishes.inc({ result: 'error' });
      this.#forcePublish ||= forced;
      throw error;
    }
    const byKey = new Map(observed.map((obj) => [policyKey(obj), obj]));
    this.#published = recordPublished(desired, result.version, byKey);
    this.#publishedFrom = from;
    metrics.publishes.inc({ result: result.changed ? 'published' : 'unchanged' });
    metrics.snapshotPolicies.set(result.policyCount);
    metrics.snapshotRules.set(result.ruleCount);
    metrics.snapshotPublishedAt.set(Date.now() / 1000);
    metrics.refusedPolicies.set(observed.filter((obj) => !isDeleting(obj) && !assessPolicy(obj).ok).length);
    if (result.changed) {
      logger.info({ version: result.version, previous: result.previous || null, policies: result.policyCount, rules: result.ruleCount }, 'published rules snapshot');
    }
    const now = this.#now();
    for (const obj of observed) {
      if (needsWork(planPolicy(obj, this.#published, now))) this.#queue.add(policyKey(obj));
    }
  }

  async #reconcilePolicy(key: string): Promise<void> {
    const { store, api, logger } = this.#options;
    if (!this.#options.isLeader()) return; // this term is ending; the next leader lists afresh
    const obj = store.get(key);
    if (obj === undefined) {
      this.#expectations.delete(key);
      return;
    }
    if (this.#awaitingOwnWrite(key, obj)) return;
    const plan = planPolicy(obj, this.#published, this.#now());
    try {
      switch (plan.action) {
        case 'add-finalizer':
          await api.addFinalizer(obj);
          this.#expect(key, obj);
          return;
        case 'await-snapshot':
          this.#queue.add(SNAPSHOT_KEY);
          return;
        case 'remove-finalizer':
          await api.removeFinalizer(obj);
          logger.info({ policy: key }, 'policy left the snapshot; finalizer removed');
          return;
        case 'none':
          break;
      }
      if (plan.status !== null) {
        await api.patchStatus(obj, plan.status);
        this.#expect(key, obj);
      }
    } catch (error) {
      if (apiStatusCode(error) === 404) return; // deleted meanwhile: its delete event re-queues
      throw error;
    }
    if (plan.event !== null) {
      logger.warn({ policy: key, generation: obj.metadata.generation, reason: plan.event.reason, detail: plan.event.message }, 'policy refused');
      // An event is a courtesy: failing to record one must not fail (and repeat) the reconcile.
      await api.recordEvent(obj, plan.event).catch((error: unknown) => {
        logger.warn({ policy: key, err: describeApiError(error) }, 'could not record event');
      });
    }
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
