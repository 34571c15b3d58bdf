// Joins two sockets both ways with backpressure, half-close, an optional idle timeout and an
// optional bandwidth gate. Counting bytes here (instead of a second 'data' listener) keeps the
// per-chunk work to one callback per direction. A socket reads into a shared buffer when it can
// (pooled-reads.ts) and on Node's own read path otherwise; the pumps are the same either way.
//
// Memory: a proxy holds thousands of idle sessions, so the relay's per-session state is two small
// objects (one per direction) with a handful of listeners, registered with `on` rather than
// `once` (each `once` costs a wrapper closure and a state object, for events that fire once
// anyway), and no per-backpressure allocation: one standing 'drain' listener per direction.
import type { Socket } from 'node:net';
import { adoptForPooledReads, ownChunk } from './pooled-reads.ts';

export interface BandwidthGate {
  /** 0 when `bytes` may go now, otherwise how long (ms) to hold the source before reading on. */
  take(bytes: number, now?: number): number;
}

export interface RelayCounters {
  bytesFromClient: number;
  bytesToClient: number;
}

export type RelayCloseCause = 'closed' | 'idle' | 'error';

export interface RelayOptions {
  idleMs: number; // 0 = no idle timeout
  gate: BandwidthGate | null;
  counters: RelayCounters;
  /** `idle` when the idle timeout ended it, `error` on a socket error, `closed` when a side closed. */
  onClose: (error: Error | null, cause: RelayCloseCause) => void;
}

/** A read at least this large means bulk data: the socket moves to pooled reads (pooled-reads.ts). */
const BULK_READ_BYTES = 16 * 1024;

/**
 * Pumps `from` into `to`. The source is paused while the destination's buffer is full or while
 * the bandwidth gate says to wait; `holds` counts the reasons so one resume cannot undo another.
 */
class Pump {
  readonly #gate: BandwidthGate | null;
  readonly #counters: RelayCounters;
  readonly #upload: boolean;
  readonly #onBulk: (pump: Pump) => void;
  from: Socket;
  to: Socket;
  #holds = 0;
  #awaitingDrain = false;
  #pooled = false;

  constructor(
    from: Socket,
    to: Socket,
    gate: BandwidthGate | null,
    counters: RelayCounters,
    upload: boolean,
    onBulk: (pump: Pump) => void,
  ) {
    this.from = from;
    this.to = to;
    this.#gate = gate;
    this.#counters = counters;
    this.#upload = upload;
    this.#onBulk = onBulk;
    from.on('data', this.#onChunk);
    to.on('drain', this.#onDrain);
    // SOCKS relays a TCP stream: a FIN from one side is passed on, the other side may go on.
    // A paused socket with nothing buffered still emits 'end' when the FIN arrives, so a client
    // that half-closes right after its request has ended before the relay starts: pass it on now.
    if (from.readableEnded) this.#passFin();
    else from.on('end', this.#passFin);
    from.resume();
  }

  /** Whether `to` may change hands now: a 'drain' still owed by the old Socket would never come. */
  get writeIdle(): boolean {
    return !this.#awaitingDrain;
  }

  /** The source moved to `socket` (pooled reads): listen there; chunks now come to onBorrowed. */
  movedFrom(old: Socket, socket: Socket): void {
    old.removeListener('data', this.#onChunk);
    old.removeListener('end', this.#passFin);
    this.from = socket;
    this.#pooled = true;
    socket.on('end', this.#passFin);
    if (this.#holds === 0) socket.resume();
  }

  /** The destination moved to `socket`. */
  movedTo(old: Socket, socket: Socket): void {
    old.removeListener('drain', this.#onDrain);
    this.to = socket;
    socket.on('drain', this.#onDrain);
  }

  #hold(): void {
    if (this.#holds++ === 0) this.from.pause();
  }

  #release(): void {
    if (--this.#holds === 0 && !this.from.destroyed) this.from.resume();
  }

  #send(chunk: Buffer, done: (() => void) | undefined): void {
    if (this.to.write(chunk, done) || this.#awaitingDrain) return;
    this.#awaitingDrain = true;
    this.#hold();
  }

  readonly #onDrain = (): void => {
    if (!this.#awaitingDrain) return;
    this.#awaitingDrain = false;
    this.#release();
  };

  /** A chunk in the shared read buffer: copied out once, since the next read reuses the buffer. */
  readonly onBorrowed = (view: Buffer): void => {
    const owned = ownChunk(view);
    this.#forward(owned.bytes, owned.done);
  };

  /** A chunk Node allocated for this read alone. */
  readonly #onChunk = (chunk: Buffer): void => {
    this.#forward(chunk, undefined);
    if (chunk.length >= BULK_READ_BYTES && !this.#pooled) this.#onBulk(this);
  };

  #forward(chunk: Buffer, done: (() => void) | undefined): void {
    if (this.#upload) this.#counters.bytesFromClient += chunk.length;
    else this.#counters.bytesToClient += chunk.length;
    const delay = this.#gate === null ? 0 : this.#gate.take(chunk.length);
    if (delay === 0) return this.#send(chunk, done);
    // Over the rate: hold this chunk and stop reading until the bucket has paid for it.
    this.#hold();
    setTimeout(() => {
      if (!this.to.destroyed) this.#send(chunk, done);
      this.#release();
    }, delay);
  }

  readonly #passFin = (): void => {
    if (!this.to.destroyed) this.to.end();
  };
}

/** The sockets a relay runs on now: a side that moved to pooled reads has a new Socket object. */
export interface RelaySockets {
  readonly client: Socket;
  readonly upstream: Socket;
}

class Relay implements RelaySockets {
  readonly #toUpstream: Pump;
  readonly #toClient: Pump;
  readonly #idleMs: number;
  readonly #onClose: (error: Error | null, cause: RelayCloseCause) => void;
  #closed = false;
  #finished = 0;

  constructor(client: Socket, upstream: Socket, options: RelayOptions) {
    this.#idleMs = options.idleMs;
    this.#onClose = options.onClose;
    for (const socket of [client, upstream]) this.#watch(socket);
    this.#toUpstream = new Pump(client, upstream, options.gate, options.counters, true, this.#onBulk);
    this.#toClient = new Pump(upstream, client, options.gate, options.counters, false, this.#onBulk);
  }

  get client(): Socket {
    return this.#toUpstream.from;
  }

  get upstream(): Socket {
    return this.#toClient.from;
  }

  #watch(socket: Socket): void {
    socket.on('finish', this.#onFinish);
    socket.on('error', this.#finish);
    socket.on('close', this.#onSocketClose);
    // A session is idle only when neither side moved bytes for idleMs.
    if (this.#idleMs > 0) socket.setTimeout(this.#idleMs, this.#onIdle);
  }

  #unwatch(socket: Socket): void {
    socket.removeListener('finish', this.#onFinish);
    socket.removeListener('error', this.#finish);
    socket.removeListener('close', this.#onSocketClose);
    if (this.#idleMs > 0) socket.setTimeout(0);
  }

  /** `reader` just read bulk data: move its source to pooled reads, if the socket is quiescent. */
  readonly #onBulk = (reader: Pump): void => {
    const writer = reader === this.#toUpstream ? this.#toClient : this.#toUpstream;
    if (this.#closed || !writer.writeIdle) return; // tried again at the next bulk read
    const old = reader.from;
    const adopted = adoptForPooledReads(old, reader.onBorrowed);
    if (adopted === null) return;
    this.#unwatch(old);
    writer.movedTo(old, adopted);
    this.#watch(adopted);
    reader.movedFrom(old, adopted);
    old.destroy(); // holds no handle now: closes nothing
  };

  readonly #finish = (error: Error | null, cause: RelayCloseCause = error === null ? 'closed' : 'error'): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.client.destroy();
    this.upstream.destroy();
    this.#onClose(error, cause);
  };

  readonly #onSocketClose = (): void => this.#finish(null);
  readonly #onIdle = (): void => this.#finish(null, 'idle');

  /** Both directions finished writing: nothing more can flow. */
  readonly #onFinish = (): void => {
    if (++this.#finished === 2) this.#finish(null);
  };
}

/**
 * Starts relaying. The returned object always names the sockets in use: a side that moves to pooled
 * reads gets a new Socket object, so a session must go through it, not keep the sockets it passed.
 */
export function relay(client: Socket, upstream: Socket, options: RelayOptions): RelaySockets {
  return new Relay(client, upstream, options);
}
