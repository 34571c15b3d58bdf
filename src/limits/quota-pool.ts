// Fleet-wide bandwidth without Redis on the per-chunk path. Redis holds one bucket per key (one
// second's worth of bytes, refilled on Redis time); each pod keeps a local balance per key that
// its sessions spend synchronously, and tops it up from Redis in chunks in the background. A
// balance may go into debt: the debt is the delay the relay waits, exactly as with a local bucket,
// and the next grants pay it back. So the fleet as a whole stays within the rate (plus one
// second's burst per pod that joins), and the relay never waits on a network call.
import type { BandwidthGate } from './types.ts';
import { asError } from '../errors.ts';

/** Top up when the balance falls under half a second's worth. */
const LOW_WATER_SECONDS = 0.5;
/** Grant requests for one key at most this often while it stays low (bounds Redis load). */
const MIN_REFILL_INTERVAL_MS = 50;
const MAX_REFILL_INTERVAL_MS = 1000;

interface QuotaBucket {
  bytesPerSecond: number;
  /** Bytes this pod may still send; negative = debt the relays are waiting off. */
  balance: number;
  leases: number;
  refilling: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Last time bytes were credited: a failing Redis in fail-open mode is replaced by the clock. */
  creditedAt: number;
}

export interface QuotaPoolOptions {
  readonly grant: (key: string, bytesPerSecond: number, want: number) => Promise<number>;
  readonly clock: () => number;
  /** open: while Redis fails, credit at the rate locally (per pod); closed: credit nothing. */
  readonly failOpen: boolean;
  readonly onError: (error: Error) => void;
}

export class QuotaPool {
  readonly #opts: QuotaPoolOptions;
  readonly #buckets = new Map<string, QuotaBucket>();
  #closed = false;

  constructor(opts: QuotaPoolOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#buckets.size;
  }

  has(key: string): boolean {
    return this.#buckets.has(key);
  }

  /** Joins the pod's bucket for `key`, creating it with the bytes Redis granted at admission. */
  acquire(key: string, bytesPerSecond: number, granted: number): BandwidthGate {
    const now = this.#opts.clock();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { bytesPerSecond, balance: granted, leases: 0, refilling: false, timer: undefined, creditedAt: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.bytesPerSecond = bytesPerSecond; // the latest rule wins (policy reloads)
      bucket.balance += granted;
    }
    bucket.leases += 1;
    const owned = bucket;
    return {
      take: (bytes: number): number => {
        owned.balance -= bytes;
        this.#maybeRefill(key, owned);
        return owned.balance >= 0 ? 0 : Math.ceil((-owned.balance * 1000) / owned.bytesPerSecond);
      },
    };
  }

  /** One lease left; the bucket goes once unused (its unspent grant is simply not returned). */
  release(key: string): void {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return;
    bucket.leases -= 1;
    if (bucket.leases <= 0) {
      clearTimeout(bucket.timer);
      this.#buckets.delete(key);
    }
  }

  close(): void {
    this.#closed = true;
    for (const bucket of this.#buckets.values()) clearTimeout(bucket.timer);
    this.#buckets.clear();
  }

  #maybeRefill(key: string, bucket: QuotaBucket): void {
    if (bucket.refilling || bucket.timer !== undefined || this.#closed) return;
    if (bucket.balance >= bucket.bytesPerSecond * LOW_WATER_SECONDS) return;
    bucket.refilling = true;
    // Ask for a full bucket plus the debt; Redis grants what it has.
    const want = Math.min(Math.ceil(bucket.bytesPerSecond - bucket.balance), 2 * bucket.bytesPerSecond);
    this.#opts.grant(key, bucket.bytesPerSecond, want).then(
      (granted) => this.#credit(key, bucket, granted),
      (error: unknown) => {
        this.#opts.onError(asError(error));
        const now = this.#opts.clock();
        const local = this.#opts.failOpen ? ((now - bucket.creditedAt) * bucket.bytesPerSecond) / 1000 : 0;
        this.#credit(
          key,
          bucket,
          Math.min(local, bucket.bytesPerSecond - Math.min(bucket.balance, bucket.bytesPerSecond)),
        );
      },
    );
  }

  #credit(key: string, bucket: QuotaBucket, granted: number): void {
    bucket.refilling = false;
    bucket.balance += granted;
    bucket.creditedAt = this.#opts.clock();
    if (this.#closed || this.#buckets.get(key) !== bucket) return;
    const lowWater = bucket.bytesPerSecond * LOW_WATER_SECONDS;
    if (bucket.balance >= lowWater) return;
    // Still low (other pods share the key, or we are paying off debt): ask again once Redis has
    // had time to refill what we lack, whether or not a relay calls take() meanwhile.
    const wait = ((lowWater - bucket.balance) * 1000) / bucket.bytesPerSecond;
    bucket.timer = setTimeout(
      () => {
        bucket.timer = undefined;
        this.#maybeRefill(key, bucket);
      },
      Math.min(MAX_REFILL_INTERVAL_MS, Math.max(MIN_REFILL_INTERVAL_MS, wait)),
    );
    bucket.timer.unref();
  }
}
