// The one table of duration flags: their defaults, whether `0` turns them off, and what they do.
// The flags' defaults, the --help lines, the chart's values.yaml comments (checked by a test) and
// docs/reference.md (generated) all read this table, so a default is written exactly once. Where
// the library behind a flag has a default of its own (the server's config, the Redis limiter's
// lease, the Redis rules source's refresh), the table reads it rather than repeating it.
import { DEFAULT_LEASE_TTL_MS } from '../limits/redis-limiter.ts';
import { DEFAULT_REFRESH_INTERVAL_MS } from '../rules/redis-source.ts';
import { defaultServerConfig as server } from '../server/session-env.ts';
import { formatMs, parseDuration, type DurationRules } from './args.ts';

/** A library default as a user writes it: `0` (off) or the largest whole unit (10s, 2m). */
const written = (ms: number): string => (ms === 0 ? '0' : formatMs(ms));

export interface DurationSetting extends DurationRules {
  /** Default as a user writes it ("10s"); "0" only where `off` (what 0 means) is set. */
  readonly default: string;
  readonly help: string;
  /** The chart value that sets the flag, when there is one. */
  readonly chart?: string;
}

export const DURATIONS = {
  'handshake-timeout': {
    default: written(server.handshakeTimeoutMs),
    off: null,
    minMs: 1,
    chart: 'proxy.timeouts.handshake',
    help: 'reading the request, from accept',
  },
  'dns-timeout': {
    default: written(server.dnsTimeoutMs),
    off: null,
    minMs: 1,
    help: 'one SOCKS4a name resolution',
  },
  'limits-timeout': {
    default: written(server.limitsTimeoutMs),
    off: null,
    minMs: 1,
    help: "the limiter's answer; later = LimiterUnavailable",
  },
  'connect-timeout': {
    default: written(server.connectTimeoutMs),
    off: null,
    minMs: 1,
    chart: 'proxy.timeouts.connect',
    help: "upstream connect; the protocol's limit is 2 minutes",
  },
  'bind-timeout': {
    default: written(server.bindAcceptTimeoutMs),
    off: null,
    minMs: 1,
    chart: 'proxy.timeouts.bind',
    help: 'BIND: wait for the inbound connection',
  },
  'idle-timeout': {
    default: written(server.idleTimeoutMs),
    off: 'idle relays stay open',
    minMs: 1,
    chart: 'proxy.timeouts.idle',
    help: 'relay idle timeout',
  },
  'ident-timeout': {
    default: written(server.identTimeoutMs),
    off: null,
    minMs: 1,
    chart: 'proxy.timeouts.ident',
    help: 'RFC 1413 ident query; a silent identd counts as unreachable',
  },
  'drain-grace': {
    default: written(server.drainGraceMs),
    off: 'sessions are closed at once',
    minMs: 1,
    help: 'on SIGTERM/SIGINT, how long sessions may go on',
  },
  'rules-refresh': {
    default: written(DEFAULT_REFRESH_INTERVAL_MS),
    off: null,
    minMs: 100,
    help: 'fleet mode: re-read the rules pointer this often besides notices',
  },
  'lease-ttl': {
    default: written(DEFAULT_LEASE_TTL_MS),
    off: null,
    minMs: 300,
    help: "fleet mode: concurrency lease time; a crashed pod's sessions free themselves within it",
  },
  'snapshot-warn-interval': {
    default: '1m',
    off: 'warned only at start',
    minMs: 1000,
    help: 'fleet mode: while no rules snapshot is held, repeat the warning this often',
  },
  timeout: {
    default: '10s',
    off: null,
    minMs: 1,
    help: 'policy push: give up on Redis after this',
  },
  resync: {
    default: '5m',
    off: 'no periodic resync',
    minMs: 1000,
    help: 'operator: re-check every policy and the snapshot this often',
  },
  'lease-duration': {
    default: '15s',
    off: null,
    minMs: 1000,
    help: 'operator: a silent leader is replaced after this (whole seconds)',
  },
  'renew-deadline': {
    default: '10s',
    off: null,
    minMs: 1,
    help: 'operator: a leader that cannot renew this long stops publishing',
  },
  'retry-period': {
    default: '2s',
    off: null,
    minMs: 1,
    help: 'operator: how often to renew or try to acquire',
  },
} as const satisfies Record<string, DurationSetting>;

export type DurationFlag = keyof typeof DURATIONS;

/** A parseArgs option for the flag, with the table's default. */
export function durationOption<F extends DurationFlag>(
  flag: F,
): { type: 'string'; default: (typeof DURATIONS)[F]['default'] } {
  return { type: 'string', default: DURATIONS[flag].default };
}

/** "(default 10s)" or "(default 0 = off: idle relays stay open)" or "(default 1m; 0 = off: ...)". */
export function describeDefault(flag: DurationFlag): string {
  const setting: DurationSetting = DURATIONS[flag];
  if (setting.off === null) return `default ${setting.default}; 0 is refused`;
  return setting.default === '0'
    ? `default 0 = off: ${setting.off}`
    : `default ${setting.default}; 0 = off: ${setting.off}`;
}

/** One --help line per flag, wrapped to the column the other help lines use. */
export function durationHelp(flags: readonly DurationFlag[]): string {
  return flags
    .map((flag) => {
      const text = `${DURATIONS[flag].help} (${describeDefault(flag)})`;
      return `${`  --${flag} D`.padEnd(28)}${wrap(text, 28, 100)}\n`;
    })
    .join('');
}

function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** Parses a flag of the table with the table's rules. */
export function readDuration(flag: DurationFlag, value: string | undefined): number {
  return parseDuration(flag, value ?? DURATIONS[flag].default, DURATIONS[flag]);
}

/** The `# --` comment above the flag's value in the chart's values.yaml (a test keeps them equal). */
export function chartComment(flag: DurationFlag): string {
  const { help } = DURATIONS[flag];
  return `# -- ${help.charAt(0).toUpperCase()}${help.slice(1)} (\`--${flag}\`; ${describeDefault(flag)}).`;
}
