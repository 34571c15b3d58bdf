// Deadlines for many sessions on one coarse timer. Every session has a handshake deadline and,
// when it connects, a connect deadline; a setTimeout and a clearTimeout for each (a Timeout object
// and a timer-list insert and removal, two per session) were a measurable share of handshake CPU
// (bench/README.md, issue #16). Here a deadline is one Map entry, and one interval per server
// checks them all, every `tickMs`: an entry expires at the first check at or after its deadline,
// never before it and at most one tick after it.
import { performance } from 'node:perf_hooks';

export interface Expiring {
  /** Its deadline passed: called once, after it has left the sweep. */
  expire(): void;
}

/** The tick for deadlines this short: a twentieth of the shortest, from 5 ms up to 100 ms. */
export function tickFor(shortestMs: number): number {
  return Math.min(100, Math.max(5, Math.floor(shortestMs / 20)));
}

export class DeadlineSweep<T extends Expiring> {
  readonly tickMs: number;
  readonly #deadlines = new Map<T, number>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;

  /** `now` is the clock deadlines are read on (performance.now); tests inject one. */
  constructor(tickMs: number, now: () => number = () => performance.now()) {
    this.tickMs = tickMs;
    this.#now = now;
  }

  get size(): number {
    return this.#deadlines.size;
  }

  /** `entry` expires `ms` from now; a second call replaces its deadline. */
  add(entry: T, ms: number): void {
    this.#deadlines.set(entry, this.#now() + ms);
    // Unref'd: a deadline never keeps the process alive (its session's socket does, while open).
    this.#timer ??= setInterval(this.check, this.tickMs).unref();
  }

  delete(entry: T): void {
    this.#deadlines.delete(entry);
  }

  /** Expires every entry whose deadline has come; the interval runs this. */
  readonly check = (): void => {
    // Stopped at a check that finds nothing, not at each delete: sessions come and go all the
    // time, and an idle proxy pays one wasted wake-up rather than a timer per session.
    if (this.#deadlines.size === 0) return this.#stop();
    const now = this.#now();
    // Deleting the visited entry (or others) while iterating a Map is safe; entries added by an
    // expire() have deadlines still ahead.
    for (const [entry, at] of this.#deadlines) {
      if (at > now) continue;
      this.#deadlines.delete(entry);
      entry.expire();
    }
  };

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
