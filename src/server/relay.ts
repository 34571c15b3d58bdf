// Joins two sockets both ways with backpressure, half-close, an optional idle timeout and an
// optional bandwidth gate. Counting bytes here (instead of a second 'data' listener) keeps the
// per-chunk work to one callback per direction.
//
// Memory: a proxy holds thousands of idle sessions, so the relay's per-session state is two small
// objects (one per direction) with a handful of listeners, registered with `on` rather than
// `once` (each `once` costs a wrapper closure and a state object, for events that fire once
// anyway), and no per-backpressure allocation: one standing 'drain' listener per direction.
import type { Socket } from 'node:net';

export interface BandwidthGate {
  /** 0 when `bytes` may go now, otherwise how long (ms) to hold the source before reading on. */
  take(bytes: number, now?: number): number;
}

export interface RelayCounters {
  bytesFromClient: number;
  bytesToClient: number;
}

export interface RelayOptions {
  idleMs: number; // 0 = no idle timeout
  gate: BandwidthGate | null;
  counters: RelayCounters;
  onClose: (error: Error | null) => void;
}

/**
 * Pumps `from` into `to`. The source is paused while the destination's buffer is full or while
 * the bandwidth gate says to wait; `holds` counts the reasons so one resume cannot undo another.
 */
class Pump {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #gate: BandwidthGate | null;
  readonly #counters: RelayCounters;
  readonly #upload: boolean;
  #holds = 0;
  #awaitingDrain = false;

  constructor(from: Socket, to: Socket, gate: BandwidthGate | null, counters: RelayCounters, upload: boolean) {
    this.#from = from;
    this.#to = to;
    this.#gate = gate;
    this.#counters = counters;
    this.#upload = upload;
    from.on('data', this.#onData);
    to.on('drain', this.#onDrain);
    // SOCKS relays a TCP stream: a FIN from one side is passed on, the other side may go on.
    // A paused socket with nothing buffered still emits 'end' when the FIN arrives, so a client
    // that half-closes right after its request has ended before the relay starts: pass it on now.
    if (from.readableEnded) this.#passFin();
    else from.on('end', this.#passFin);
    from.resume();
  }

  #hold(): void {
    if (this.#holds++ === 0) this.#from.pause();
  }

  #release(): void {
    if (--this.#holds === 0 && !this.#from.destroyed) this.#from.resume();
  }

  #send(chunk: Buffer): void {
    if (this.#to.write(chunk) || this.#awaitingDrain) return;
    this.#awaitingDrain = true;
    this.#hold();
  }

  readonly #onDrain = (): void => {
    if (!this.#awaitingDrain) return;
    this.#awaitingDrain = false;
    this.#release();
  };

  readonly #onData = (chunk: Buffer): void => {
    if (this.#upload) this.#counters.bytesFromClient += chunk.length;
    else this.#counters.bytesToClient += chunk.length;
    const delay = this.#gate === null ? 0 : this.#gate.take(chunk.length);
    if (delay === 0) return this.#send(chunk);
    // Over the rate: hold this chunk and stop reading until the bucket has paid for it.
    this.#hold();
    setTimeout(() => {
      if (!this.#to.destroyed) this.#send(chunk);
      this.#release();
    }, delay);
  };

  readonly #passFin = (): void => {
    if (!this.#to.destroyed) this.#to.end();
  };
}

class Relay {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #onClose: (error: Error | null) => void;
  #closed = false;
  #finished = 0;

  constructor(client: Socket, upstream: Socket, options: RelayOptions) {
    this.#client = client;
    this.#upstream = upstream;
    this.#onClose = options.onClose;
    for (const socket of [client, upstream]) {
      socket.on('finish', this.#onFinish);
      socket.on('error', this.#finish);
      socket.on('close', this.#onSocketClose);
      // A session is idle only when neither side moved bytes for idleMs.
      if (options.idleMs > 0) socket.setTimeout(options.idleMs, this.#onSocketClose);
    }
    new Pump(client, upstream, options.gate, options.counters, true);
    new Pump(upstream, client, options.gate, options.counters, false);
  }

  readonly #finish = (error: Error | null): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
    this.#upstream.destroy();
    this.#onClose(error);
  };

  readonly #onSocketClose = (): void => this.#finish(null);

  /** Both directions finished writing: nothing more can flow. */
  readonly #onFinish = (): void => {
    if (++this.#finished === 2) this.#finish(null);
  };
}

export function relay(client: Socket, upstream: Socket, options: RelayOptions): void {
  new Relay(client, upstream, options);
}
