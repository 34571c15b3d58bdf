// JSON logs through pino. Client-supplied strings (USERID, host names) are fields, never part of
// a message, so a hostile USERID cannot forge a log line. Writes are buffered and asynchronous:
// logging never blocks the relay.
import pino, { type Logger } from 'pino';
import { channels, type SessionInfo, type SnapshotEvent, type SourceErrorEvent } from './events.ts';

export type { Logger } from 'pino';

const LIMITER_LOG_INTERVAL_MS = 5_000;

// JSON leaves U+0085, U+2028 and U+2029 raw, and many log tools break lines at them: a hostile
// USERID could split one event into two lines. Their \u escapes are the same JSON string.
const LINE_BREAKERS = /[\u0085\u2028\u2029]/g;
const escapeLineBreakers = (line: string): string =>
  line.replace(LINE_BREAKERS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function createLogger(options: { level?: string; destination?: number | string; sync?: boolean } = {}): Logger {
  const destination = pino.destination({
    dest: options.destination ?? 1,
    sync: options.sync ?? false,
  });
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['redisUrl', 'password', '*.password'], censor: '[redacted]' },
      hooks: { streamWrite: escapeLineBreakers },
    },
    destination,
  );
  // Flush what is buffered when the process ends normally.
  process.once('exit', () => destination.flushSync());
  return logger;
}

/** Subscribes the logger to the core's events; returns the unsubscribe function. */
export function logEvents(logger: Logger, options: { redactUserIds?: boolean } = {}): () => void {
  const onSessionEnd = (message: unknown): void => {
    const s = message as SessionInfo;
    const granted = s.replyCode === 90;
    if (!logger.isLevelEnabled('info')) return;
    logger.info(
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
        handshakeMs: s.handshakeMs === null ? null : Math.round(s.handshakeMs * 1000) / 1000,
        bytesUp: s.bytesFromClient,
        bytesDown: s.bytesToClient,
      },
      granted ? 'session closed' : 'session refused',
    );
  };
  const onSnapshot = (message: unknown): void => {
    const e = message as SnapshotEvent;
    logger.info({ source: e.source, version: e.version, policies: e.policyCount, rules: e.ruleCount }, 'rules snapshot loaded');
  };
  const onSnapshotError = (message: unknown): void => {
    const e = message as SourceErrorEvent;
    logger.error({ source: e.source, err: e.error }, 'rules snapshot refused; keeping the previous one');
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
  channels.snapshotLoaded.subscribe(onSnapshot);
  channels.snapshotError.subscribe(onSnapshotError);
  channels.limiterError.subscribe(onLimiterError);
  return () => {
    channels.sessionEnd.unsubscribe(onSessionEnd);
    channels.snapshotLoaded.unsubscribe(onSnapshot);
    channels.snapshotError.unsubscribe(onSnapshotError);
    channels.limiterError.unsubscribe(onLimiterError);
  };
}
