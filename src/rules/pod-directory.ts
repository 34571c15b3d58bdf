// Which namespace a client address belongs to (fleet mode): the operator's pod address map in
// Redis (src/rules/redis-keys.ts podKeys), read whole at start, on every reconnect, on a resync notice
// and on a slow timer, and one address at a time as notices name them. All reads go through one
// connection, so their answers arrive (and are applied) in the order they were asked: a full
// read never overwrites a newer single-address read. A lookup is a Map read on the session path;
// Redis is never asked while a client waits. If Redis is away, the last map stays in force.
import { Cluster } from 'ioredis';
import { unmapIpv4 } from '../policy/ip.ts';
import { closeRedisClient, type RedisClient } from '../redis/connection.ts';
import { POD_RESYNC, podKeys, type PodKeys } from './redis-keys.ts';

export const DEFAULT_POD_REFRESH_MS = 60_000;

export interface PodDirectory {
  /** The namespace of the pod holding `address`, or null when it is no known pod. */
  namespaceOf(address: string): string | null;
}

/** `::ffff:10.0.0.1` (a dual-stack socket's IPv4 client) is 10.0.0.1, as the operator writes it. */
function canonical(address: string): string {
  return unmapIpv4(address).toLowerCase();
}

export class RedisPodDirectory implements PodDirectory {
  readonly #client: RedisClient;
  readonly #keys: PodKeys;
  readonly #refreshMs: number;
  #map = new Map<string, string>();
  #subscriber: RedisClient | null = null;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Notified when a read fails (the old map stays); for logs. */
  onError: (error: Error) => void = () => {};

  constructor(options: { client: RedisClient; prefix: string; refreshMs?: number }) {
    this.#client = options.client;
    this.#keys = podKeys(options.prefix);
    this.#refreshMs = options.refreshMs ?? DEFAULT_POD_REFRESH_MS;
  }

  namespaceOf(address: string): string | null {
    return this.#map.get(canonical(address)) ?? null;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Subscribes, then reads the whole map; does not wait for Redis (the rule source does). */
  start(): void {
    const client = this.#client;
    const subscriber: RedisClient = client instanceof Cluster ? client.duplicate() : client.duplicate();
    this.#subscriber = subscriber;
    subscriber.on('error', () => {});
    subscriber.on('message', this.#onMessage);
    // Subscribe first, then read: nothing published in between is missed.
    subscriber.on('ready', () => {
      subscriber.subscribe(this.#keys.channel).then(
        () => this.reload(),
        (error: unknown) => this.#fail(error),
      );
    });
    client.on('ready', this.#onClientReady);
    this.#timer = setInterval(() => void this.reload(), this.#refreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#client.off('ready', this.#onClientReady);
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    if (subscriber !== null) await closeRedisClient(subscriber);
  }

  /** Reads the whole map. */
  async reload(): Promise<void> {
    if (this.#stopped) return;
    try {
      const all = await this.#client.hgetall(this.#keys.addresses);
      if (!this.#stopped) this.#map = new Map(Object.entries(all));
    } catch (error) {
      this.#fail(error);
    }
  }

  #onClientReady = (): void => void this.reload();

  #onMessage = (channel: string, message: string): void => {
    if (channel !== this.#keys.channel) return;
    if (message === POD_RESYNC) {
      void this.reload();
      return;
    }
    const address = canonical(message);
    this.#client.hget(this.#keys.addresses, address).then(
      (ns) => {
        if (this.#stopped) return;
        if (ns === null) this.#map.delete(address);
        else this.#map.set(address, ns);
      },
      (error: unknown) => this.#fail(error),
    );
  };

  #fail(error: unknown): void {
    if (!this.#stopped) this.onError(error instanceof Error ? error : new Error(String(error)));
  }
}
