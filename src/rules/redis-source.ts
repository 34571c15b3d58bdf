// Rules from Redis (fleet mode): the snapshot the current-version pointer names, re-read on every
// change notice, whenever a connection comes back, and on a slow timer as a safety net for a
// notice lost in between. The subscription is made before the first read of the pointer, so a
// publish can never fall between "read" and "listening". Anything that fails to read, parse,
// validate or compile is refused and the snapshot in force stays; Redis losing its data (an
// empty pointer) also leaves it in force. A version is read from its manifest when it has one,
// fetching only the chunks this pod does not hold (src/rules/snapshot-chunks.ts), else from the
// whole document.
import { Cluster } from 'ioredis';
import { EventEmitter } from 'node:events';
import { closeRedisClient, waitForReady, type RedisClient } from '../redis/connection.ts';
import { ruleKeys, VERSION_PATTERN, type RuleKeys } from './redis-keys.ts';
import { assemblePolicies, parseChunk, parseManifest, type SnapshotManifest } from './snapshot-chunks.ts';
import {
  compileSnapshot,
  parseSnapshotDocument,
  SnapshotInvalidError,
  type ParsedSnapshot,
} from './snapshot-document.ts';
import type { Socks4Policy } from '../policy/types.ts';
import { channels } from '../telemetry/events.ts';
import type { RuleSnapshot, RuleSource } from './types.ts';
import { errorMessage } from '../errors.ts';

export const DEFAULT_REFRESH_INTERVAL_MS = 15_000;
const DEFAULT_START_TIMEOUT_MS = 5_000;

export interface RedisRuleSourceOptions {
  /** Shared with the limiter; the source opens its own subscriber connection from it. */
  readonly client: RedisClient;
  readonly prefix: string;
  /** The slow re-read timer (default 15 s). */
  readonly refreshIntervalMs?: number;
  /** How long start() waits for Redis before giving up on the first read (default 5 s). */
  readonly startTimeoutMs?: number;
}

export class RedisRuleSource extends EventEmitter implements RuleSource {
  readonly name = 'redis';
  readonly #client: RedisClient;
  readonly #keys: RuleKeys;
  readonly #refreshIntervalMs: number;
  readonly #startTimeoutMs: number;
  #subscriber: RedisClient | null = null;
  #snapshot: RuleSnapshot | null = null;
  /** Parsed chunks of the snapshot in force, by digest: a push fetches only the others. */
  #chunks = new Map<string, readonly Socks4Policy[]>();
  #createdAt: string | null = null;
  #checkedAt: number | null = null;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  #stopped = false;
  /** Settles once the latest (re)subscription and the read after it are done. */
  #subscribed: Promise<void> = Promise.resolve();

  constructor(options: RedisRuleSourceOptions) {
    super();
    this.#client = options.client;
    this.#keys = ruleKeys(options.prefix);
    this.#refreshIntervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  }

  current(): RuleSnapshot | null {
    return this.#snapshot;
  }

  /** When the publisher created the snapshot in force (ISO 8601), null when none is held. */
  createdAt(): string | null {
    return this.#createdAt;
  }

  /** When the pointer was last read successfully (ms epoch): how fresh "current" is. */
  checkedAt(): number | null {
    return this.#checkedAt;
  }

  async start(): Promise<void> {
    const client = this.#client;
    // (Two calls because the union of the two duplicate() signatures is not callable.)
    const subscriber: RedisClient = client instanceof Cluster ? client.duplicate() : client.duplicate();
    this.#subscriber = subscriber;
    subscriber.on('error', () => {});
    subscriber.on('message', this.#onMessage);
    subscriber.on('ready', this.#onSubscriberReady);
    this.#client.on('ready', this.#onClientReady);
    const deadline = Date.now() + this.#startTimeoutMs;
    await waitForReady(subscriber, this.#startTimeoutMs);
    await waitForReady(this.#client, Math.max(0, deadline - Date.now()));
    // Subscribe first, then read: #onSubscriberReady did both when the subscriber came up.
    await this.#subscribed;
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#refreshIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#client.off('ready', this.#onClientReady);
    await this.#queued;
    await this.#inFlight;
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    if (subscriber !== null) await closeRedisClient(subscriber);
  }

  /** Reads the pointer (and the snapshot when it moved); overlapping calls share one re-read. */
  refresh(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    if (this.#inFlight !== null) {
      this.#queued = this.#inFlight.then(() => {
        this.#queued = null;
        return this.#run();
      });
      return this.#queued;
    }
    return this.#run();
  }

  #onSubscriberReady = (): void => {
    const subscriber = this.#subscriber;
    if (subscriber === null) return;
    // Also after a reconnect: notices sent while we were away are lost, so read the pointer.
    // The main connection's own 'ready' re-reads when it comes up later than this one.
    this.#subscribed = subscriber.subscribe(this.#keys.channel).then(
      () => (this.#client.status === 'ready' ? this.refresh() : undefined),
      (error: unknown) => this.#refuse(new Error(`subscribing to ${this.#keys.channel}: ${errorMessage(error)}`)),
    );
  };

  #onClientReady = (): void => void this.refresh();

  #onMessage = (channel: string): void => {
    if (channel === this.#keys.channel) void this.refresh();
  };

  #run(): Promise<void> {
    const run = this.#load().finally(() => {
      if (this.#inFlight === run) this.#inFlight = null;
    });
    this.#inFlight = run;
    return run;
  }

  async #load(): Promise<void> {
    if (this.#stopped) return;
    let version: string | null;
    let manifest: string | null;
    let json: string | null = null;
    try {
      version = await this.#client.get(this.#keys.pointer);
      this.#checkedAt = Date.now();
      if (version === null || version === this.#snapshot?.version) return;
      if (!VERSION_PATTERN.test(version))
        throw new Error(`${this.#keys.pointer} holds "${version.slice(0, 80)}", not a snapshot version`);
      // The manifest when the publisher wrote one (only changed chunks to fetch), else the document.
      manifest = await this.#client.get(this.#keys.manifest(version));
      if (manifest === null) {
        json = await this.#client.get(this.#keys.snapshot(version));
        if (json === null) throw new Error(`snapshot ${version} is named by ${this.#keys.pointer} but missing`);
      }
    } catch (error) {
      this.#refuse(new Error(`reading rules from Redis: ${errorMessage(error)}`, { cause: error }));
      return;
    }
    let next: ParsedSnapshot;
    try {
      if (json !== null) {
        next = parseSnapshotDocument(json, version);
        this.#chunks = new Map();
      } else next = await this.#fromChunks(parseManifest(manifest as string, version));
    } catch (error) {
      this.#refuse(
        error instanceof SnapshotInvalidError
          ? error
          : new Error(`reading rules from Redis: ${errorMessage(error)}`, { cause: error }),
      );
      return;
    }
    if (this.#stopped) return;
    const snap = next.snapshot;
    this.#snapshot = snap;
    this.#createdAt = next.document.createdAt;
    if (channels.snapshotLoaded.hasSubscribers) {
      const { traceparent } = next.document;
      // The publisher's trace context: the proxy's "snapshot enforce" span links to it.
      channels.snapshotLoaded.publish({
        source: this.name,
        version: snap.version,
        ruleCount: snap.ruleCount,
        policyCount: snap.policyCount,
        loadedAt: snap.loadedAt,
        ...(traceparent === undefined ? {} : { traceparent }),
      });
    }
    this.emit('snapshot', snap);
  }

  /** Fetches the chunks this pod does not hold yet (one MGET: they share a slot), then compiles. */
  async #fromChunks(manifest: SnapshotManifest): Promise<ParsedSnapshot> {
    const missing = manifest.chunks.filter((id) => !this.#chunks.has(id));
    const texts = missing.length === 0 ? [] : await this.#client.mget(missing.map((id) => this.#keys.chunk(id)));
    const held = new Map<string, readonly Socks4Policy[]>();
    for (const id of manifest.chunks) {
      const cached = this.#chunks.get(id);
      if (cached !== undefined) held.set(id, cached);
    }
    missing.forEach((id, i) => {
      const text = texts[i];
      if (text === null || text === undefined)
        throw new SnapshotInvalidError(`chunk ${id} of snapshot ${manifest.version} is missing`);
      held.set(id, parseChunk(id, text));
    });
    const parsed = compileSnapshot(manifest, assemblePolicies(manifest, held));
    // Only the chunks of a snapshot that compiled are kept, and only those it uses.
    this.#chunks = held;
    return parsed;
  }

  #refuse(error: Error): void {
    if (this.#stopped) return;
    if (channels.snapshotError.hasSubscribers)
      channels.snapshotError.publish({ source: this.name, error, keeping: this.#snapshot?.version ?? null });
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
