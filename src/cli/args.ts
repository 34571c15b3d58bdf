// Small parsers the commands share; each throws UsageError with a message a person can act on.

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

// A reader that stops early (`policy explain … | head -1`) closes the pipe: the rest of the output
// is unwanted, not an error. Writes after EPIPE are dropped and the command ends with its own exit
// code; any other write error still surfaces.
let stdoutClosed = false;
let stdoutWatched = false;
function writeStdout(text: string): void {
  if (!stdoutWatched) {
    stdoutWatched = true;
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      stdoutClosed = true;
    });
  }
  if (!stdoutClosed) process.stdout.write(text);
}

export const processIO: CliIO = {
  stdout: writeStdout,
  stderr: (text) => void process.stderr.write(text),
};

const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "250ms", "10s", "2m", "1h" or a bare number of milliseconds; "0" means off where allowed. */
export function parseDuration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (match === null) throw new UsageError(`--${flag}: "${value}" is not a duration (try 500ms, 10s, 2m)`);
  const unit = (match[2] ?? 'ms') as keyof typeof units;
  return Math.round(Number(match[1]) * units[unit]);
}

export function parseCount(flag: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag}: "${value}" is not a whole number ≥ ${min}`);
  return n;
}

/** A fraction in (0, 1]: "0.25". */
export function parseShare(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new UsageError(`--${flag}: "${value}" is not a fraction above 0 and at most 1 (try 0.25)`);
  return n;
}

/** "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces). */
export function parseHostPort(flag: string, value: string, defaultHost = '0.0.0.0'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) throw new UsageError(`--${flag}: "${value}" is not HOST:PORT`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? defaultHost : host, port };
}
