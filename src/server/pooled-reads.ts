// Relay reads without a fresh allocation per read.
//
// By default Node reads each socket into a new 64 KiB allocation outside the JS heap; at relay
// rates that is hundreds of MB a second, and V8 answers every 64 MB of it with a full collection
// (profiled: 26% of the proxy's CPU while relaying). A socket created with `onread` reads into
// memory we hand it instead. Sockets accepted by `net.Server` cannot be created that way, so once
// a relayed socket shows bulk data (a large read), its handle moves into a new Socket that has
// `onread`: every such socket reads into one shared buffer, and the relay copies each chunk out
// (into a recycled buffer) before anything can hold on to it. Idle and chatty sessions stay on
// Node's path and pay nothing for this: a new Socket object per side is garbage they need not make.
// Reads larger than Node's 64 KiB also mean fewer system calls and callbacks per byte.
//
// This rests on two things Node does not document: the `handle` constructor option (what
// `net.Server` itself uses for accepted sockets) and `socket._handle`. `adoptForPooledReads`
// checks for them and returns null when anything is not as expected; the relay then uses the
// sockets as they are, on Node's own read path.
import net, { type Socket } from 'node:net';

/** Bytes one read may bring: the shared read buffer and each recycled copy are this size. */
export const READ_BUFFER_BYTES = 256 * 1024;
/** Copies at most this large go to Node's small-buffer pool instead of a recycled slab. */
const SMALL_CHUNK_BYTES = 4096;
/** Spare slabs kept for reuse; beyond this, a slab returned is left to the garbage collector. */
const MAX_SPARE_SLABS = 32;

// Every adopted socket reads into this one buffer: reads run one at a time on this thread, and the
// read callback copies out what it needs before returning.
const shared = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
const spareSlabs: Buffer[] = [];

/** A chunk that outlives the read callback, with what to do once its write has completed. */
export interface OwnedChunk {
  readonly bytes: Buffer;
  readonly done: (() => void) | undefined;
}

function slabReturner(slab: Buffer): () => void {
  return () => {
    if (spareSlabs.length < MAX_SPARE_SLABS) spareSlabs.push(slab);
  };
}

/** Copies `view` (valid only during the read callback) into memory the caller may keep. */
export function ownChunk(view: Buffer): OwnedChunk {
  const length = view.length;
  if (length <= SMALL_CHUNK_BYTES) {
    const bytes = Buffer.allocUnsafe(length); // a slice of Node's 8 KiB pool: no allocation of its own
    view.copy(bytes, 0, 0, length);
    return { bytes, done: undefined };
  }
  const slab = spareSlabs.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  view.copy(slab, 0, 0, length);
  return { bytes: slab.subarray(0, length), done: slabReturner(slab) };
}

interface HandleCarrier {
  _handle?: { useUserBuffer?: unknown; readStop?: unknown } | null;
  _readableState?: { ended?: boolean };
}

/**
 * Moves a connected, quiescent socket's handle into a new Socket whose reads land in the shared
 * buffer and go to `onRead` (a view valid only during the call). Returns the new Socket, paused,
 * or null (the socket untouched) when the socket has bytes buffered either way, has seen or sent
 * its FIN, or is not a plain TCP socket. May be called from the socket's own 'data' listener.
 * On success the old Socket has no handle any more: the caller takes its own listeners off it,
 * then destroys it (which closes nothing, and releases the server's count of the connection).
 */
export function adoptForPooledReads(socket: Socket, onRead: (view: Buffer) => void): Socket | null {
  const carrier = socket as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function' || typeof handle.readStop !== 'function')
    return null;
  if (socket.destroyed || socket.connecting || socket.pending) return null;
  if (socket.writableLength > 0 || socket.readableLength > 0 || socket.readableEnded || socket.writableEnded)
    return null;
  if (carrier._readableState?.ended !== false) return null;
  const options = {
    handle,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    pauseOnCreate: true,
    onread: {
      buffer: shared,
      callback: (bytes: number): boolean => {
        onRead(shared.subarray(0, bytes));
        return true; // a pump that must stop reading has paused the socket itself
      },
    },
  };
  // Detach first: the old Socket must never close or read the handle it no longer owns.
  carrier._handle = null;
  return new net.Socket(options as unknown as net.SocketConstructorOpts);
}
