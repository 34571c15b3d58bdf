// A work queue with client-go's guarantees, for keys like `namespace/name`:
// - a key waits in the queue at most once, however often it is added (dedupe);
// - a key handed to a worker is not handed to another until done(key); adds meanwhile mark it
//   dirty and it comes back once, after done (never two workers on one key);
// - failures back off per key, exponentially, until forget(key).
// Timers come from an injectable scheduler so tests drive time by hand.

export interface Scheduler {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realScheduler: Scheduler = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
};

export interface WorkQueueOptions {
  /** First retry delay; doubles with every failure of the same key. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly scheduler?: Scheduler;
}

export const DEFAULT_BASE_DELAY_MS = 10;
export const DEFAULT_MAX_DELAY_MS = 60_000;

export class WorkQueue {
  // A Set iterates in insertion order: a FIFO with O(1) membership.
  readonly #queued = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { handle: unknown; at: number }>();
  readonly #waiters: ((key: string | null) => void)[] = [];
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #scheduler: Scheduler;
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.#scheduler = options.scheduler ?? realScheduler;
  }

  /** Keys waiting for a worker (not counting those in progress or delayed). */
  get length(): number {
    return this.#queued.size;
  }

  get processing(): number {
    return this.#processing.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#enqueue(key);
  }

  /** Adds `key` after `ms`; an earlier pending add of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.#scheduler.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      this.#scheduler.clearTimeout(pending.handle);
    }
    const handle = this.#scheduler.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { handle, at });
  }

  /** Re-adds a key that failed, after base × 2^(failures so far), capped. */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#baseDelayMs * 2 ** Math.min(failures, 30), this.#maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count (after it succeeded, or when it no longer exists). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key for a worker, or null once the queue is shut down. */
  get(): Promise<string | null> {
    if (this.#shuttingDown) return Promise.resolve(null);
    const key = this.#take();
    if (key !== null) return Promise.resolve(key);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Ends a worker's hold on `key`; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#enqueue(key);
  }

  /** Wakes every waiting worker with null and drops pending work and timers. */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const { handle } of this.#delayed.values()) this.#scheduler.clearTimeout(handle);
    this.#delayed.clear();
    this.#queued.clear();
    this.#dirty.clear();
    for (const wake of this.#waiters.splice(0)) wake(null);
  }

  #enqueue(key: string): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queued.add(key);
  }

  #take(): string | null {
    const first = this.#queued.values().next();
    if (first.done === true) return null;
    const key = first.value;
    this.#queued.delete(key);
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }
}
