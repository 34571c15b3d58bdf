// Where log lines go: a buffered, asynchronous sonic-boom (pino's destination). Profiled at
// thousands of sessions a second, one write(2) per session line was the largest single cost the
// proxy added to Node's own work (bench/README.md, "What the profiles changed"). Lines now
// collect until MIN_BYTES are waiting, then go out in one write; nothing is lost:
//   - a line never waits longer than FLUSH_INTERVAL_MS (a timer hands over what is waiting), so a
//     quiet proxy's lines still reach the log pipeline promptly, and a SIGKILL (or OOM kill)
//     loses at most that interval's lines;
//   - on exit (a normal return, SIGTERM/SIGINT after the drain, process.exit) what is left is
//     written synchronously, since no event loop turn will follow.
//
// The lines wait here, in an array joined once per write, and not in sonic-boom's own buffer:
// sonic-boom appends each line to its last chunk and measures that whole chunk (Buffer.byteLength)
// on every write, which flattens the growing string again and again: 7.6 KiB of garbage per
// session line at 16 KiB batches, a fifth of what a session allocates (heap-profiled, issue #16).
import pino from 'pino';

/**
 * Workers (--workers) share one stdout: about ten session lines per write(2), each write at most
 * PIPE_BUF (4096) bytes of whole lines, so writes to a pipe are atomic and never interleave inside
 * a line. A process that owns its stdout alone writes about forty lines at a time: each write is
 * a hand-off to libuv's thread pool, and at 4 KiB that cost 11 us of CPU per line against 6-7 at
 * 16 KiB (a 350-byte line, async sonic-boom to a file, this machine).
 */
export const MIN_BYTES = 3584;
const MAX_WRITE = 4096;
export const MIN_BYTES_ALONE = 15_360;
const MAX_WRITE_ALONE = 16_384;
export const FLUSH_INTERVAL_MS = 100;

export type LogStream = pino.DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void };

/** shared: other processes (workers) write to the same destination, so writes must stay atomic. */
export function bufferedDestination(
  dest: number | string,
  options: { sync?: boolean; shared?: boolean } = {},
): LogStream {
  const sync = options.sync ?? false;
  const shared = options.shared ?? true;
  const maxWrite = shared ? MAX_WRITE : MAX_WRITE_ALONE;
  // minLength 0: sonic-boom writes each batch as it is handed one (queued behind a write in
  // flight, and written when that one completes); the batching is ours, below.
  const stream = pino.destination({ dest, sync, minLength: 0, maxWrite }) as unknown as LogStream;
  if (sync) return stream;
  const handOver = batchLines(stream, shared ? MIN_BYTES : MIN_BYTES_ALONE, maxWrite);
  const timer = setInterval(handOver, FLUSH_INTERVAL_MS);
  timer.unref(); // never what keeps the process alive
  return stream;
}

/**
 * Puts a line batcher in front of the stream's own write, flush and flushSync (sonic-boom sets
 * them per instance too), so every caller, pino's exit handler included (it calls flushSync on
 * exit and flush before it ends the stream), hands over the waiting lines first. Returns the
 * hand-over, for the timer.
 */
function batchLines(stream: LogStream, minBytes: number, maxWrite: number): () => void {
  const write = stream.write.bind(stream);
  const flush = stream.flush.bind(stream);
  const flushSync = stream.flushSync.bind(stream);
  let lines: string[] = [];
  let bytes = 0;
  const handOver = (): void => {
    if (lines.length === 0) return;
    const batch = lines.length === 1 ? (lines[0] as string) : lines.join('');
    lines = [];
    bytes = 0;
    write(batch);
  };
  stream.write = (line: string): void => {
    const size = Buffer.byteLength(line);
    if (bytes + size > maxWrite) handOver(); // whole lines only; a longer line goes alone
    lines.push(line);
    bytes += size;
    if (bytes >= minBytes) handOver();
  };
  stream.flush = (cb?: (err?: Error) => void): void => {
    handOver();
    flush(cb);
  };
  stream.flushSync = (): void => {
    handOver();
    flushSync();
  };
  return handOver;
}
