// Keeps this pod's concurrency leases alive. Each lease is a ZSET member scored by its expiry;
// while the session runs, a timer pushes the expiry forward every third of the lease time (one
// script call per key, not per session). When the pod dies the renewals stop and its sessions
// free themselves within one lease time; nothing has to notice the crash.
import { asError } from '../errors.ts';

export interface LeaseRenewerOptions {
  readonly ttlMs: number;
  readonly renew: (key: string, ttlMs: number, members: readonly string[]) => Promise<unknown>;
  readonly onError: (error: Error) => void;
}

export class LeaseRenewer {
  readonly #opts: LeaseRenewerOptions;
  readonly #byKey = new Map<string, Set<string>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: LeaseRenewerOptions) {
    this.#opts = opts;
  }

  get size(): number {
    let n = 0;
    for (const members of this.#byKey.values()) n += members.size;
    return n;
  }

  add(key: string, member: string): void {
    let members = this.#byKey.get(key);
    if (members === undefined) {
      members = new Set();
      this.#byKey.set(key, members);
    }
    members.add(member);
    if (this.#timer === undefined) {
      // A third of the TTL leaves two renewals' worth of slack for a slow or briefly absent Redis.
      this.#timer = setInterval(() => this.renewAll(), Math.max(100, Math.floor(this.#opts.ttlMs / 3)));
      this.#timer.unref();
    }
  }

  remove(key: string, member: string): void {
    const members = this.#byKey.get(key);
    if (members === undefined) return;
    members.delete(member);
    if (members.size === 0) this.#byKey.delete(key);
    if (this.#byKey.size === 0) this.#stopTimer();
  }

  /** Renews every live lease now (the timer calls this). */
  renewAll(): void {
    for (const [key, members] of this.#byKey) {
      this.#opts
        .renew(key, this.#opts.ttlMs, [...members])
        .catch((error: unknown) => this.#opts.onError(asError(error)));
    }
  }

  /** Stops renewing and hands back every lease still held, for a graceful release. */
  close(): Map<string, Set<string>> {
    this.#stopTimer();
    const held = new Map(this.#byKey);
    this.#byKey.clear();
    return held;
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
