// JSON logs through pino. Client-supplied strings (USERID, host names) are fields, never part of
// a message, so a hostile USERID cannot forge a log line. Writes are buffered and asynchronous:
// logging never blocks the relay.
import pino, { type Logger } from 'pino';
import { bufferedDestination } from './log-destination.ts';
import {
  channels,
  type ConnectionRefusedEvent,
  type PhaseEvent,
  type SessionInfo,
  type SnapshotEvent,
  type SourceErrorEvent,
} from './events.ts';

export type { Logger } from 'pino';

const LIMITER_LOG_INTERVAL_MS = 5_000;
const REFUSED_LOG_INTERVAL_MS = 5_000;

// JSON leaves U+0085, U+2028 and U+2029 raw, and many log tools break lines at them: a hostile
// USERID could split one event into two lines. Their \u escapes are the same JSON string.
const LINE_BREAKERS = /[\u0085\u2028\u2029]/g;
const escapeLineBreakers = (line: string): string =>
  line.replace(LINE_BREAKERS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * pino's isoTime, with the date-and-seconds part built once per second rather than by a Date and
 * toISOString per line (profiled at thousands of session lines a second). Same text.
 */
let isoSecond = -1;
let isoPrefix = '';
export function isoTime(): string {
  const now = Date.now();
  const ms = now % 1000;
  const second = now - ms;
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = `,"time":"${new Date(second).toISOString().slice(0, 20)}`;
  }
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

/** shared: other processes (--workers) write to the same destination (default: assume they may). */
export function createLogger(
  options: { level?: string; destination?: number | string; sync?: boolean; shared?: boolean } = {},
): Logger {
  const destination = bufferedDestination(options.destination ?? 1, {
    sync: options.sync ?? false,
    shared: options.shared ?? true,
  });
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['redisUrl', 'password', '*.password'], censor: '[redacted]' },
      hooks: { streamWrite: escapeLineBreakers },
    },
    destination,
  );
  return logger;
}

/** Subscribes the logger to the core's events; returns the unsubscribe function. */
export function logEvents(logger: Logger, options: { redactUserIds?: boolean } = {}): () => void {
  // The session line carries none of the redacted fields (redisUrl, password): its own child
  // skips the redaction pass, which with a wildcard path runs per field (~4 µs a line, profiled).
  const sessionLog = logger.child({}, { redact: [] });
  const onSessionEnd = (s: SessionInfo): void => {
    const granted = s.replyCode === 90;
    if (!logger.isLevelEnabled('info')) return;
    sessionLog.info(
      {
        session: s.id,
        client: s.clientAddress,
        clientPort: s.clientPort,
        command: s.command,
        userId: options.redactUserIds === true ? undefined : s.userId,
        host: s.host,
        dest: s.destIp,
        destPort: s.destPort,
        rule: s.ruleId,
        clientNamespace: s.namespace ?? undefined,
        tier: s.tier ?? undefined,
        snapshot: s.snapshotVersion,
        reply: s.replyCode,
        reason: s.reason,
        err: s.error ?? undefined,
        guard: s.guard ?? undefined,
        handshakeMs: s.handshakeMs === null ? null : Math.round(s.handshakeMs * 1000) / 1000,
        durationMs: Math.round((performance.now() - s.startedAt) * 1000) / 1000,
        closeCause: s.closeCause,
        bytesUp: s.bytesFromClient,
        bytesDown: s.bytesToClient,
        // What a Report policy would have decided (rule, action, reason, reply); absent otherwise.
        report: s.report ?? undefined,
      },
      !granted ? 'session refused' : s.closeCause === 'Draining' ? 'session cut by the drain' : 'session closed',
    );
  };
  // Debug: the accept itself, before anything is decided (a client that never sends is visible).
  const onSessionStart = (s: SessionInfo): void => {
    if (!logger.isLevelEnabled('debug')) return;
    logger.debug({ session: s.id, client: s.clientAddress, clientPort: s.clientPort }, 'session accepted');
  };
  const onPhase = (e: PhaseEvent): void => {
    if (!logger.isLevelEnabled('debug')) return;
    logger.debug(
      {
        session: e.session.id,
        phase: e.phase,
        ms: Math.round((e.endedAt - e.startedAt) * 1000) / 1000,
        error: e.error,
      },
      'session phase',
    );
  };
  // Connections refused at accept (over --max-sessions or --max-handshakes, or draining) never
  // become sessions: the first is logged at once, then one line per interval with the counts.
  const refusedCounts = new Map<string, number>();
  let refusedTimer: NodeJS.Timeout | null = null;
  const flushRefused = (): void => {
    refusedTimer = null;
    if (refusedCounts.size === 0) return;
    const counts = Object.fromEntries(refusedCounts);
    refusedCounts.clear();
    logger.warn({ refused: counts, intervalMs: REFUSED_LOG_INTERVAL_MS }, 'connections refused at accept (reply 91)');
    refusedTimer = setTimeout(flushRefused, REFUSED_LOG_INTERVAL_MS);
    refusedTimer.unref();
  };
  const onConnectionRefused = ({ reason }: ConnectionRefusedEvent): void => {
    refusedCounts.set(reason, (refusedCounts.get(reason) ?? 0) + 1);
    if (refusedTimer === null) flushRefused();
  };
  // A reload that drops more than half of the rules is more often a mistake (a truncated file, a
  // push from the wrong checkout) than a plan: it is loaded, but said at warn.
  const ruleCounts = new Map<string, number>();
  const onSnapshot = (e: SnapshotEvent): void => {
    const previous = ruleCounts.get(e.source);
    ruleCounts.set(e.source, e.ruleCount);
    const fields = {
      source: e.source,
      version: e.version,
      policies: e.policyCount,
      rules: e.ruleCount,
      previousRules: previous ?? null,
    };
    if (previous !== undefined && e.ruleCount * 2 < previous) {
      logger.warn(fields, `rules snapshot loaded; it drops ${previous - e.ruleCount} of ${previous} rules`);
    } else if (e.ruleCount === 0) {
      logger.warn(fields, 'rules snapshot loaded; it holds no rules, so every request is refused');
    } else {
      logger.info(fields, 'rules snapshot loaded');
    }
  };
  const onSnapshotError = (e: SourceErrorEvent): void => {
    const keeping = e.keeping ?? null;
    logger.error(
      { source: e.source, err: e.error, keeping },
      keeping === null
        ? 'rules snapshot refused; no rules are in force'
        : 'rules snapshot refused; keeping the previous one',
    );
  };
  // While Redis is down every admission fails: one line per interval, with the count, not a flood.
  let suppressed = 0;
  let lastLimiterLog = 0;
  const onLimiterError = (message: unknown): void => {
    const now = Date.now();
    if (now - lastLimiterLog < LIMITER_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastLimiterLog = now;
    logger.warn({ err: (message as { error: Error }).error, suppressed }, 'limiter call failed');
    suppressed = 0;
  };
  channels.sessionEnd.subscribe(onSessionEnd);
  channels.sessionStart.subscribe(onSessionStart);
  channels.sessionPhase.subscribe(onPhase);
  channels.connectionRefused.subscribe(onConnectionRefused);
  channels.snapshotLoaded.subscribe(onSnapshot);
  channels.snapshotError.subscribe(onSnapshotError);
  channels.limiterError.subscribe(onLimiterError);
  return () => {
    channels.sessionEnd.unsubscribe(onSessionEnd);
    channels.sessionStart.unsubscribe(onSessionStart);
    channels.sessionPhase.unsubscribe(onPhase);
    channels.connectionRefused.unsubscribe(onConnectionRefused);
    if (refusedTimer !== null) clearTimeout(refusedTimer);
    flushRefused();
    channels.snapshotLoaded.unsubscribe(onSnapshot);
    channels.snapshotError.unsubscribe(onSnapshotError);
    channels.limiterError.unsubscribe(onLimiterError);
  };
}
