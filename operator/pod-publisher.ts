// Publishes the pod address → namespace map (operator/pod-addresses.ts) to Redis while this
// operator leads. The map lives apart from the rules snapshot (src/rules/redis-keys.ts podKeys): a pod
// starting or stopping changes one hash field and sends one notice naming the address, and never
// rewrites or re-announces the snapshot. A term starts with a full comparison against what Redis
// holds (another leader, or none, wrote it), as does every reconnect (Redis may have lost it).
import type { Logger } from 'pino';
import type { RedisClient } from '../src/redis/connection.ts';
import { POD_RESYNC, podKeys, type PodKeys } from '../src/rules/redis-keys.ts';
import type { PodAddressIndex } from './pod-addresses.ts';
import { errorMessage } from '../src/errors.ts';

/** After a failed write, the next attempt (the dirty addresses are kept). */
const RETRY_MS = 1_000;

export interface PodPublisherOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly index: PodAddressIndex;
  readonly logger: Logger;
}

export class PodAddressPublisher {
  readonly #options: PodPublisherOptions;
  readonly #keys: PodKeys;
  /** What Redis holds, as far as this term knows; null until the first full sync. */
  #published: Map<string, string> | null = null;
  readonly #dirty = new Set<string>();
  #running: Promise<void> | null = null;
  #again = false;
  #full = true;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: PodPublisherOptions) {
    this.#options = options;
    this.#keys = podKeys(options.prefix);
    options.redis.on('ready', this.#onReady);
  }

  /** Begins the term: a full sync now, then incremental writes as addresses change. */
  start(): void {
    this.#schedule();
  }

  /** Addresses whose namespace may have changed. */
  changed(addresses: readonly string[]): void {
    if (this.#stopped || addresses.length === 0) return;
    for (const a of addresses) this.#dirty.add(a);
    this.#schedule();
  }

  /** Resolves once nothing is dirty and no write is in flight (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#options.redis.off('ready', this.#onReady);
    await this.#running;
  }

  #onReady = (): void => {
    this.#full = true;
    this.#schedule();
  };

  // One write at a time; changes arriving meanwhile are coalesced into the next one.
  #schedule(): void {
    if (this.#stopped) return;
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = this.#flush().finally(() => {
      this.#running = null;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.#schedule();
      }
    });
  }

  async #flush(): Promise<void> {
    // Let the rest of a burst of watch events (a relist, a rollout) join this write.
    await new Promise((resolve) => setImmediate(resolve));
    const { redis, index, logger } = this.#options;
    try {
      if (this.#full || this.#published === null) {
        this.#dirty.clear();
        const desired = index.entries();
        const held = new Map(Object.entries(await redis.hgetall(this.#keys.addresses)));
        const stale = [...held.keys()].filter((a) => !desired.has(a));
        const set = [...desired].filter(([a, ns]) => held.get(a) !== ns);
        const tx = redis.multi();
        if (stale.length > 0) tx.hdel(this.#keys.addresses, ...stale);
        if (set.length > 0) tx.hset(this.#keys.addresses, Object.fromEntries(set));
        tx.publish(this.#keys.channel, POD_RESYNC);
        await tx.exec();
        this.#published = desired;
        this.#full = false;
        logger.info({ addresses: desired.size, removed: stale.length, written: set.length }, 'published pod addresses');
        return;
      }
      const addresses = [...this.#dirty];
      this.#dirty.clear();
      const tx = redis.multi();
      const next = new Map<string, string | null>();
      for (const address of addresses) {
        const ns = index.namespaceOf(address);
        if ((this.#published.get(address) ?? null) === ns) continue;
        next.set(address, ns);
        if (ns === null) tx.hdel(this.#keys.addresses, address);
        else tx.hset(this.#keys.addresses, address, ns);
        tx.publish(this.#keys.channel, address);
      }
      if (next.size === 0) return;
      try {
        await tx.exec();
      } catch (error) {
        for (const a of addresses) this.#dirty.add(a);
        throw error;
      }
      for (const [address, ns] of next) {
        if (ns === null) this.#published.delete(address);
        else this.#published.set(address, ns);
      }
    } catch (error) {
      logger.warn({ err: errorMessage(error), retryInMs: RETRY_MS }, 'publishing pod addresses failed; retrying');
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#schedule(), RETRY_MS);
      this.#timer.unref();
    }
  }
}
