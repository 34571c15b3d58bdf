// Joins two sockets both ways with backpressure, half-close, an optional idle timeout and an
// optional bandwidth gate. Counting bytes here (instead of a second 'data' listener) keeps the
// per-chunk work to one callback per direction.
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
 * Pumps `from` into `to`. A source is paused while the destination's buffer is full or while
 * the bandwidth gate says to wait; `holds` counts the reasons so one resume cannot undo another.
 */
function pump(
  from: Socket,
  to: Socket,
  count: (bytes: number) => void,
  gate: BandwidthGate | null,
): void {
  let holds = 0;
  const hold = (): void => {
    if (holds++ === 0) from.pause();
  };
  const release = (): void => {
    if (--holds === 0 && !from.destroyed) from.resume();
  };
  const send = (chunk: Buffer): void => {
    if (!to.write(chunk)) {
      hold();
      to.once('drain', release);
    }
  };
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    const delay = gate === null ? 0 : gate.take(chunk.length);
    if (delay === 0) return send(chunk);
    // Over the rate: hold this chunk and stop reading until the bucket has paid for it.
    hold();
    setTimeout(() => {
      if (!to.destroyed) send(chunk);
      release();
    }, delay);
  });
  // SOCKS relays a TCP stream: a FIN from one side is passed on, the other side may go on.
  const passFin = (): void => {
    if (!to.destroyed) to.end();
  };
  // A paused socket with nothing buffered still emits 'end' when the FIN arrives, so a client
  // that half-closes right after its request has ended before the relay starts: pass it on now.
  if (from.readableEnded) passFin();
  else from.once('end', passFin);
  from.resume();
}

export function relay(client: Socket, upstream: Socket, options: RelayOptions): void {
  const { counters, gate } = options;
  let closed = false;
  let ended = 0;
  const finish = (error: Error | null): void => {
    if (closed) return;
    closed = true;
    client.destroy();
    upstream.destroy();
    options.onClose(error);
  };
  const onEnded = (): void => {
    // Both directions finished writing: nothing more can flow.
    if (++ended === 2) finish(null);
  };
  client.once('finish', onEnded);
  upstream.once('finish', onEnded);
  client.once('error', finish);
  upstream.once('error', finish);
  client.once('close', () => finish(null));
  upstream.once('close', () => finish(null));
  if (options.idleMs > 0) {
    // A session is idle only when neither side moved bytes for idleMs.
    const onIdle = (): void => finish(null);
    client.setTimeout(options.idleMs, onIdle);
    upstream.setTimeout(options.idleMs, onIdle);
  }
  pump(client, upstream, (n) => (counters.bytesFromClient += n), gate);
  pump(upstream, client, (n) => (counters.bytesToClient += n), gate);
}
