// Prometheus metrics, fed only by diagnostics_channel events. Labels are bounded sets (command,
// reply code, reason, phase): never client addresses or USERIDs.
import client from 'prom-client';
import { channels, type PhaseEvent, type SessionInfo, type SnapshotEvent } from './events.ts';

export interface ProxyMetrics {
  registry: client.Registry;
  /** Unsubscribes from the channels. */
  close(): void;
}

export function createProxyMetrics(options: {
  activeSessions: () => number;
  snapshot: () => { version: string; loadedAt: number } | null;
}): ProxyMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const sessions = new client.Counter({
    name: 'socks4_sessions_total',
    help: 'Sessions ended, by command, reply code and refusal reason (reason="" when granted).',
    labelNames: ['command', 'reply', 'reason'] as const,
    registers: [registry],
  });
  new client.Gauge({
    name: 'socks4_active_sessions',
    help: 'Sessions open now, in any state.',
    registers: [registry],
    collect() {
      this.set(options.activeSessions());
    },
  });
  const handshake = new client.Histogram({
    name: 'socks4_handshake_duration_seconds',
    help: 'Time from accept to the first reply.',
    labelNames: ['command', 'reply'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const bytes = new client.Counter({
    name: 'socks4_relayed_bytes_total',
    help: 'Bytes relayed, by direction (upstream = client to destination).',
    labelNames: ['direction'] as const,
    registers: [registry],
  });
  const limitRejections = new client.Counter({
    name: 'socks4_limit_rejections_total',
    help: 'Sessions refused by a limit, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const phases = new client.Histogram({
    name: 'socks4_phase_duration_seconds',
    help: 'Duration of handshake phases (dns, ident, limits, connect, bind-accept).',
    labelNames: ['phase', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  new client.Gauge({
    name: 'socks4_snapshot_age_seconds',
    help: 'Seconds since the rules snapshot in force was loaded (-1 when none is held).',
    registers: [registry],
    collect() {
      const held = options.snapshot();
      this.set(held === null ? -1 : (Date.now() - held.loadedAt) / 1000);
    },
  });
  const snapshotInfo = new client.Gauge({
    name: 'socks4_snapshot_info',
    help: 'The rules snapshot in force (value 1), by version.',
    labelNames: ['version'] as const,
    registers: [registry],
  });
  const snapshotErrors = new client.Counter({
    name: 'socks4_snapshot_errors_total',
    help: 'Snapshots refused (invalid or unreadable); the previous one stays in force.',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const limiterErrors = new client.Counter({
    name: 'socks4_limiter_errors_total',
    help: 'Failed calls to the shared limiter (Redis); decided by the configured fail mode.',
    registers: [registry],
  });

  const refusedAtAccept = new client.Counter({
    name: 'socks4_connections_refused_total',
    help: 'Connections turned away at accept, before any request (draining, session or handshake cap).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const onRefused = (message: unknown): void => {
    refusedAtAccept.inc({ reason: (message as { reason: string }).reason });
  };

  // prom-client hashes a labels object (sorting its keys) on every inc/observe; sessions end
  // thousands of times a second, so the labelled children are looked up once per label set
  // (profiled: ~3% of handshake CPU). The label sets are small and bounded, so are these maps.
  const sessionChildren = new Map<string, client.Counter.Internal>();
  const handshakeChildren = new Map<string, client.Histogram.Internal<'command' | 'reply'>>();
  const phaseChildren = new Map<string, client.Histogram.Internal<'phase' | 'outcome'>>();
  const bytesUp = bytes.labels('upstream'); // two per session: bound once, like the maps above
  const bytesDown = bytes.labels('downstream');
  const onEnd = (message: unknown): void => {
    const s = message as SessionInfo;
    const reply = s.replyCode === null ? 'none' : String(s.replyCode);
    const command = s.command ?? 'none';
    const reason = s.replyCode === 90 ? '' : (s.reason ?? '');
    const sessionKey = `${command}|${reply}|${reason}`;
    let counted = sessionChildren.get(sessionKey);
    if (counted === undefined) sessionChildren.set(sessionKey, (counted = sessions.labels(command, reply, reason)));
    counted.inc();
    if (s.handshakeMs !== null) {
      const handshakeKey = `${command}|${reply}`;
      let observed = handshakeChildren.get(handshakeKey);
      if (observed === undefined) handshakeChildren.set(handshakeKey, (observed = handshake.labels(command, reply)));
      observed.observe(s.handshakeMs / 1000);
    }
    if (s.bytesFromClient > 0) bytesUp.inc(s.bytesFromClient);
    if (s.bytesToClient > 0) bytesDown.inc(s.bytesToClient);
    if (s.reason === 'RateLimited' || s.reason === 'ConcurrencyLimited') {
      limitRejections.inc({ kind: s.reason === 'RateLimited' ? 'connectionRate' : 'concurrentSessions' });
    }
  };
  const onPhase = (message: unknown): void => {
    const e = message as PhaseEvent;
    const outcome = e.error ?? 'ok';
    const phaseKey = `${e.phase}|${outcome}`;
    let observed = phaseChildren.get(phaseKey);
    if (observed === undefined) phaseChildren.set(phaseKey, (observed = phases.labels(e.phase, outcome)));
    observed.observe((e.endedAt - e.startedAt) / 1000);
  };
  const onSnapshot = (message: unknown): void => {
    const e = message as SnapshotEvent;
    snapshotInfo.reset();
    snapshotInfo.set({ version: e.version }, 1);
  };
  const onSnapshotError = (message: unknown): void => {
    snapshotErrors.inc({ source: (message as { source: string }).source });
  };
  const onLimiterError = (): void => limiterErrors.inc();
  channels.connectionRefused.subscribe(onRefused);
  channels.sessionEnd.subscribe(onEnd);
  channels.sessionPhase.subscribe(onPhase);
  channels.snapshotLoaded.subscribe(onSnapshot);
  channels.snapshotError.subscribe(onSnapshotError);
  channels.limiterError.subscribe(onLimiterError);
  return {
    registry,
    close() {
      channels.connectionRefused.unsubscribe(onRefused);
      channels.sessionEnd.unsubscribe(onEnd);
      channels.sessionPhase.unsubscribe(onPhase);
      channels.snapshotLoaded.unsubscribe(onSnapshot);
      channels.snapshotError.unsubscribe(onSnapshotError);
      channels.limiterError.unsubscribe(onLimiterError);
    },
  };
}
