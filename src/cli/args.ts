// Small parsers the commands share; each throws UsageError with a message a person can act on.

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A runtime failure at start (a port in use, a policy that does not load): one line, exit 1. */
export class StartupError extends Error {
  override name = 'StartupError';
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

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const EXAMPLES = '500ms, 10s, 2m, 1h';

/** Whether `0` turns the setting off (a description of "off"), and the least other value. */
export interface DurationRules {
  readonly off: string | null;
  readonly minMs: number;
}

/**
 * "250ms", "10s", "2m", "1h"; "0" means off where `rules.off` allows it and is refused elsewhere.
 * A bare number is refused with the units it might have meant: `10` silently read as 10 ms cut
 * every client's handshake. Duration flags belong in the table in durations.ts.
 */
export function parseDuration(flag: string, value: string, rules: DurationRules = { off: null, minMs: 1 }): number {
  const text = value.trim();
  if (/^0+(\.0+)?(ms|s|m|h)?$/.test(text)) {
    if (rules.off !== null) return 0;
    throw new UsageError(
      `--${flag}: 0 is refused, this deadline cannot be turned off; give a duration such as ${EXAMPLES}`,
    );
  }
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new UsageError(`--${flag}: "${value}" has no unit; write ${text}s or ${text}ms (durations: ${EXAMPLES})`);
  }
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (match === null) throw new UsageError(`--${flag}: "${value}" is not a duration (try ${EXAMPLES})`);
  const ms = Math.round(Number(match[1]) * UNITS[match[2] as keyof typeof UNITS]);
  if (ms < rules.minMs) throw new UsageError(`--${flag}: "${value}" is below the minimum of ${formatMs(rules.minMs)}`);
  return ms;
}

export function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export function parseCount(flag: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag}: "${value}" is not a whole number ≥ ${min}`);
  return n;
}

/** A fraction in (0, 1]: "0.25". */
export function parseShare(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1)
    throw new UsageError(`--${flag}: "${value}" is not a fraction above 0 and at most 1 (try 0.25)`);
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

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
/** Defaults `proxy` and `operator` share (flags and --help read them). */
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_OPS_LISTEN = '127.0.0.1:9090';

export function parseLogLevel(value: string): (typeof LOG_LEVELS)[number] {
  const level = LOG_LEVELS.find((l) => l === value.toLowerCase());
  if (level === undefined)
    throw new UsageError(`--log-level: "${value}" is not a level; use one of ${LOG_LEVELS.join(', ')}`);
  return level;
}
