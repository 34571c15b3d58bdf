// Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it:
// - a candidate takes the Lease when its holder is empty (released) or has not renewed it for
//   leaseDuration, measured on the candidate's own clock from when it last saw the record change,
//   so clocks of different machines are never compared;
// - the leader renews every retryPeriod and stops acting as leader when it could not renew for
//   renewDeadline (< leaseDuration), before anyone else may take over;
// - writes carry the resourceVersion read, so of two candidates racing, one gets 409 Conflict.
// decideLease is pure; LeaderElector is the loop around a LeaseClient. SoleLeader stands in for
// it when election is off (`--no-leader-elect`): one instance that leads from start to stop.
import type { Scheduler } from './queue.ts';
import { realScheduler } from './queue.ts';

export interface LeaseView {
  readonly resourceVersion: string;
  /** Empty or null: released, anyone may take it. */
  readonly holderIdentity: string | null;
  readonly leaseDurationSeconds: number;
  readonly leaseTransitions: number;
}

export interface LeaseWrite {
  readonly holderIdentity: string | null;
  readonly leaseDurationSeconds: number;
  readonly leaseTransitions: number;
  /** Set when the holder changes (acquireTime); renewTime is always now. */
  readonly acquired: boolean;
}

/** What the elector needs from the API server; the Kubernetes adapter is operator/kube-api.ts. */
export interface LeaseClient {
  get(): Promise<LeaseView | null>;
  create(write: LeaseWrite): Promise<LeaseView>;
  /** Rejects when `resourceVersion` is stale (409): someone else wrote first. */
  update(resourceVersion: string, write: LeaseWrite): Promise<LeaseView>;
}

export type LeaseDecision =
  | { readonly kind: 'create' }
  | { readonly kind: 'renew' }
  | { readonly kind: 'take' }
  | { readonly kind: 'wait'; readonly holder: string; readonly remainingMs: number };

/**
 * `observedAt`: this candidate's clock when it first saw the current record (its
 * resourceVersion). A holder that keeps renewing keeps changing the record and never expires.
 */
export function decideLease(lease: LeaseView | null, identity: string, observedAt: number, now: number): LeaseDecision {
  if (lease === null) return { kind: 'create' };
  if (lease.holderIdentity === identity) return { kind: 'renew' };
  if (lease.holderIdentity === null || lease.holderIdentity === '') return { kind: 'take' };
  const remainingMs = observedAt + lease.leaseDurationSeconds * 1000 - now;
  return remainingMs <= 0 ? { kind: 'take' } : { kind: 'wait', holder: lease.holderIdentity, remainingMs };
}

export interface LeaderElectorOptions {
  readonly client: LeaseClient;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
  readonly onError?: (error: unknown) => void;
  readonly scheduler?: Scheduler;
}

/** What the operator asks of its leadership, elected or not. */
export interface Leadership {
  readonly identity: string;
  isLeader(): boolean;
  start(): void;
  stop(options?: { release?: boolean }): Promise<void>;
}

export class LeaderElector implements Leadership {
  readonly #options: LeaderElectorOptions;
  readonly #scheduler: Scheduler;
  #leading = false;
  #lastRenewAt = -Infinity;
  #observed: { resourceVersion: string; at: number } | null = null;
  #lease: LeaseView | null = null;
  #timer: unknown = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(options: LeaderElectorOptions) {
    if (!(options.renewDeadlineMs < options.leaseDurationMs))
      throw new Error('renew deadline must be shorter than the lease duration');
    if (!(options.retryPeriodMs < options.renewDeadlineMs))
      throw new Error('retry period must be shorter than the renew deadline');
    if (options.leaseDurationMs % 1000 !== 0)
      throw new Error('the lease duration is whole seconds (Lease.spec.leaseDurationSeconds)');
    this.#options = options;
    this.#scheduler = options.scheduler ?? realScheduler;
  }

  get identity(): string {
    return this.#options.identity;
  }

  /** True only while the last renewal is younger than the renew deadline, by this clock. */
  isLeader(): boolean {
    return this.#leading && this.#scheduler.now() - this.#lastRenewAt < this.#options.renewDeadlineMs;
  }

  start(): void {
    if (this.#timer !== null || this.#running !== null || this.#stopped) return;
    this.#schedule(0);
  }

  /**
   * Stops campaigning and releases the Lease while its record still names this candidate, so a
   * standby takes over at its next try. That holds even when the last renew came back after the
   * renew deadline (isLeader() already false, nothing published since): no one else can have
   * taken the record without changing its resourceVersion, and the release is conditional on it.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) this.#scheduler.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
    this.#setLeading(false);
    const held = this.#lease;
    if (options.release !== false && held !== null && held.holderIdentity === this.#options.identity) {
      try {
        await this.#options.client.update(held.resourceVersion, {
          holderIdentity: null,
          leaseDurationSeconds: 1,
          leaseTransitions: held.leaseTransitions,
          acquired: false,
        });
      } catch (error) {
        this.#options.onError?.(error); // the Lease then simply expires
      }
    }
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#scheduler.setTimeout(() => {
      this.#timer = null;
      this.#running = this.#tick().finally(() => {
        this.#running = null;
        // Candidates spread their tries a little so they do not hit the API server in lockstep.
        const jitter = this.#leading ? 0 : Math.random() * 0.2 * this.#options.retryPeriodMs;
        this.#schedule(this.#options.retryPeriodMs + jitter);
      });
    }, ms);
  }

  async #tick(): Promise<void> {
    const { client, identity, leaseDurationMs } = this.#options;
    try {
      const lease = await client.get();
      const now = this.#scheduler.now();
      if (lease !== null && this.#observed?.resourceVersion !== lease.resourceVersion) {
        this.#observed = { resourceVersion: lease.resourceVersion, at: now };
      }
      this.#lease = lease;
      if (this.#stopped) return; // stop() came during the read: no write it would have to undo
      const decision = decideLease(lease, identity, this.#observed?.at ?? now, now);
      const write: LeaseWrite = {
        holderIdentity: identity,
        leaseDurationSeconds: leaseDurationMs / 1000,
        leaseTransitions: (lease?.leaseTransitions ?? 0) + (decision.kind === 'take' ? 1 : 0),
        acquired: decision.kind !== 'renew',
      };
      if (decision.kind === 'wait') {
        this.#setLeading(false);
        return;
      }
      // A write that finishes after the deadline proves nothing about when it was accepted.
      const started = this.#scheduler.now();
      const updated =
        decision.kind === 'create'
          ? await client.create(write)
          : await client.update((lease as LeaseView).resourceVersion, write);
      // Kept even when stop() came meanwhile: the release must carry the resourceVersion written.
      this.#lease = updated;
      if (this.#stopped) return;
      this.#observed = { resourceVersion: updated.resourceVersion, at: started };
      this.#lastRenewAt = started;
      this.#setLeading(true);
    } catch (error) {
      this.#options.onError?.(error);
      if (this.#leading && !this.isLeader()) this.#setLeading(false);
    }
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    if (leading) this.#options.onStartedLeading();
    else this.#options.onStoppedLeading();
  }
}

export interface SoleLeaderOptions {
  readonly identity: string;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

/**
 * Leadership without election: the only instance leads from start() until stop() and never reads
 * or writes a Lease, so it needs no Lease permissions. Safe only while nothing else publishes
 * the same fleet: the chart runs it with one replica and the Recreate strategy.
 */
export class SoleLeader implements Leadership {
  readonly #options: SoleLeaderOptions;
  #leading = false;
  #stopped = false;

  constructor(options: SoleLeaderOptions) {
    this.#options = options;
  }

  get identity(): string {
    return this.#options.identity;
  }

  isLeader(): boolean {
    return this.#leading;
  }

  start(): void {
    if (this.#leading || this.#stopped) return;
    this.#leading = true;
    this.#options.onStartedLeading();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (!this.#leading) return;
    this.#leading = false;
    this.#options.onStoppedLeading();
  }
}
