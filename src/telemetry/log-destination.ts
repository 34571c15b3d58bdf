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
 * About ten session lines per write(2). Each write is at most PIPE_BUF (4096) bytes of whole
 * lines, so writes to a pipe are atomic: workers (--workers) sharing one stdout never interleave
 * inside a line.
 */
export const MIN_BYTES = 3584;
const MAX_WRITE = 4096;
export const FLUSH_INTERVAL_MS = 100;

export interface LogDestination {
  readonly stream: pino.DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void };
  /** Called for every line written (pino's streamWrite hook), so idle timers write nothing. */
  noteWrite(): void;
}

export function bufferedDestination(dest: number | string, options: { sync?: boolean } = {}): LogDestination {
  const sync = options.sync ?? false;
  const stream = pino.destination({ dest, sync, minLength: sync ? 0 : MIN_BYTES, maxWrite: MAX_WRITE });
  if (sync) return { stream, noteWrite: () => {} };
  let waiting = false;
  const timer = setInterval(() => {
    if (!waiting) return;
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
