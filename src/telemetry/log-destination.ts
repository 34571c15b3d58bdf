// Where log lines go: a buffered, asynchronous sonic-boom (pino's destination). Profiled at
// thousands of sessions a second, one write(2) per session line was the largest single cost the
// proxy added to Node's own work (bench/README.md, "What the profiles changed"). Lines now
// collect until MIN_BYTES are waiting, then go out in one write; nothing is lost:
//   - a line never waits longer than FLUSH_INTERVAL_MS (a timer flushes what is waiting), so a
//     quiet proxy's lines still reach the log pipeline promptly, and a SIGKILL (or OOM kill)
//     loses at most that interval's lines;
//   - on exit (a normal return, SIGTERM/SIGINT after the drain, process.exit) what is left is
//     written synchronously, since no event loop turn will follow.
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

export interface LogDestination {
  readonly stream: pino.DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void };
  /** Called for every line written (pino's streamWrite hook), so idle timers write nothing. */
  noteWrite(): void;
}

/** shared: other processes (workers) write to the same destination, so writes must stay atomic. */
export function bufferedDestination(
  dest: number | string,
  options: { sync?: boolean; shared?: boolean } = {},
): LogDestination {
  const sync = options.sync ?? false;
  const shared = options.shared ?? true;
  const maxWrite = shared ? MAX_WRITE : MAX_WRITE_ALONE;
  const stream = pino.destination({ dest, sync, minLength: sync ? 0 : shared ? MIN_BYTES : MIN_BYTES_ALONE, maxWrite });
  if (sync) return { stream, noteWrite: () => {} };
  let waiting = false;
  const timer = setInterval(() => {
    if (!waiting) return;
    // flush() while a write is in flight does nothing, and what is left (under minLength) would
    // then wait for the next line, however late: try again at the next tick instead.
    if ((stream as unknown as { _writing?: boolean })._writing === true) return;
    waiting = false;
    stream.flush();
  }, FLUSH_INTERVAL_MS);
  timer.unref(); // never what keeps the process alive
  // On exit, pino.destination itself writes what is left synchronously (it registers that for
  // every asynchronous destination); test/telemetry/log-flush.test.ts holds it to that.
  return {
    stream,
    noteWrite: () => {
      waiting = true;
    },
  };
}
