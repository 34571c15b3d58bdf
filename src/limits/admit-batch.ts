// Admissions to Redis, batched: every admission asked while the previous batch of its group is
// on the wire (or in the same event-loop turn) goes out together, as one script call. Profiled in
// Redis mode: per admission, ioredis built a command, an auto-pipeline entry, three promises and
// a command timer, and the limiter a deadline timer and a Promise.race (together ~15 % of the
// pod's CPU); per batch that is paid once. A group is the set of admissions one call may carry:
// on Redis Cluster the keys of one hash tag (one slot), on a single Redis everything.
//
// Deadlines stay per admission: each one is answered by its own deadline (counted from when it
// was asked, not from when its batch was sent), by one shared timer that sweeps the admissions
// in the order they were asked (their deadlines are in that order too). An admission past its
// deadline is answered with the error; if Redis answers it later, `onLate` gets that answer (a
// slot granted to nobody must be handed back).

/** What one admission gets: Redis's answer, or why there is none. */
export type BatchOutcome<R> = { readonly reply: R; readonly error?: undefined } | { readonly error: Error };

export interface AdmitBatcherOptions<A, R> {
  /** Sends one batch; resolves with one answer per request, in order. */
  readonly send: (requests: readonly A[]) => Promise<readonly R[]>;
  /** How long an admission waits for its answer before it is answered with an error. */
  readonly timeoutMs: number;
  /** An answer that came after its admission's deadline. */
  readonly onLate: (request: A, reply: R) => void;
  /** Most admissions in one call (bounds the script's argument list). */
  readonly maxBatch?: number;
  readonly now?: () => number;
}

interface Entry<A, R> {
  readonly request: A;
  readonly deadline: number;
  settle: ((outcome: BatchOutcome<R>) => void) | null;
}

interface Group<A, R> {
  queue: Entry<A, R>[];
  sending: boolean;
  scheduled: boolean;
}

export const DEFAULT_MAX_BATCH = 64;

export class AdmitBatcher<A, R> {
  readonly #opts: AdmitBatcherOptions<A, R>;
  readonly #maxBatch: number;
  readonly #now: () => number;
  readonly #groups = new Map<string, Group<A, R>>();
  /** Unanswered admissions in the order asked; answered ones leave from the front. */
  #waiting: Entry<A, R>[] = [];
  #head = 0;
  #sweep: NodeJS.Timeout | undefined;
  /** Admissions asked and not yet answered by Redis or failed by the connection. */
  #inFlight = 0;

  constructor(opts: AdmitBatcherOptions<A, R>) {
    this.#opts = opts;
    this.#maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.#now = opts.now ?? performance.now.bind(performance);
  }

  /** Admissions waiting on Redis, the deadline's decision notwithstanding. */
  get inFlight(): number {
    return this.#inFlight;
  }

  admit(group: string, request: A): Promise<BatchOutcome<R>> {
    return new Promise((settle) => {
      const entry: Entry<A, R> = { request, deadline: this.#now() + this.#opts.timeoutMs, settle };
      this.#inFlight += 1;
      let g = this.#groups.get(group);
      if (g === undefined) {
        g = { queue: [], sending: false, scheduled: false };
        this.#groups.set(group, g);
      }
      g.queue.push(entry);
      this.#dropAnswered();
      this.#waiting.push(entry);
      if (this.#sweep === undefined) this.#arm(this.#opts.timeoutMs);
      // Sent after this turn's I/O (as ioredis's auto-pipelining does), or after the turn in
      // which the batch on the wire comes back, whichever is later.
      if (!g.sending && !g.scheduled) {
        g.scheduled = true;
        setImmediate(this.#flush, group, g);
      }
    });
  }

  readonly #flush = (name: string, g: Group<A, R>): void => {
    g.scheduled = false;
    if (g.queue.length === 0) {
      if (!g.sending) this.#groups.delete(name);
      return;
    }
    const batch = g.queue.length <= this.#maxBatch ? g.queue : g.queue.slice(0, this.#maxBatch);
    g.queue = batch === g.queue ? [] : g.queue.slice(this.#maxBatch);
    g.sending = true;
    const done = (): void => {
      this.#inFlight -= batch.length;
      g.sending = false;
      // Not at once (ioredis does): the sessions whose requests arrive in the same poll phase as
      // the reply join this batch (measured: 0.42 -> 0.34 script calls per session).
      if (!g.scheduled) {
        g.scheduled = true;
        setImmediate(this.#flush, name, g);
      }
    };
    let sent: Promise<readonly R[]>;
    try {
      sent = this.#opts.send(batch.map((e) => e.request));
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (replies) => {
        for (let i = 0; i < batch.length; i++) {
          const entry = batch[i] as Entry<A, R>;
          const reply = replies[i] as R;
          if (entry.settle === null) this.#opts.onLate(entry.request, reply);
          else answer(entry, { reply });
        }
        done();
      },
      (error: unknown) => {
        const outcome = { error: error instanceof Error ? error : new Error(String(error)) };
        for (const entry of batch) answer(entry, outcome);
        done();
      },
    );
  };

  readonly #expire = (): void => {
    this.#sweep = undefined;
    const now = this.#now();
    for (; this.#head < this.#waiting.length; this.#head++) {
      const entry = this.#waiting[this.#head] as Entry<A, R>;
      if (entry.settle === null) continue;
      if (entry.deadline > now) break;
      answer(entry, { error: new Error(`Redis did not answer within ${this.#opts.timeoutMs} ms`) });
    }
    this.#dropAnswered();
    const next = this.#waiting[this.#head];
    if (next !== undefined) this.#arm(Math.max(1, next.deadline - now));
  };

  // Unreferenced: what keeps the process alive while an admission waits is its Redis connection.
  #arm(ms: number): void {
    this.#sweep = setTimeout(this.#expire, ms);
    this.#sweep.unref();
  }

  /** Forgets answered admissions at the front, so the list holds only what may still expire. */
  #dropAnswered(): void {
    while (this.#head < this.#waiting.length && (this.#waiting[this.#head] as Entry<A, R>).settle === null)
      this.#head++;
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}

function answer<A, R>(entry: Entry<A, R>, outcome: BatchOutcome<R>): void {
  const settle = entry.settle;
  if (settle === null) return;
  entry.settle = null;
  settle(outcome);
}
