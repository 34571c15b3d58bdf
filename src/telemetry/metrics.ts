// Prometheus metrics, fed only by diagnostics_channel events. Labels are bounded sets (command,
// reply code, reason, phase): never client addresses or USERIDs.
import client from 'prom-client';
import {
  channels,
  type ConnectionRefusedEvent,
  type PhaseEvent,
  type SessionInfo,
  type SnapshotEvent,
  type SourceErrorEvent,
} from './events.ts';
import { FastHistogram, type HistogramChild } from './fast-histogram.ts';

/** Distinct namespace label values per process; later namespaces share OTHER_NAMESPACES. */
export const MAX_NAMESPACE_LABELS = 100;
export const OTHER_NAMESPACES = '_other';

export interface ProxyMetrics {
  registry: client.Registry;
  /** Unsubscribes from the channels. */
  close(): void;
}

/**
 * A counter child's increments, summed in a plain number and handed to prom-client when the counter
 * is read (its collect runs on every /metrics scrape and JSON read): prom-client's inc() rebuilds
 * and hashes the labels on every call, and sessions end thousands of times a second.
 */
class CountOnRead {
  #pending = 0;
  readonly #child: client.Counter.Internal;

  constructor(child: client.Counter.Internal) {
    this.#child = child;
  }

  inc(by = 1): void {
    this.#pending += by;
  }

  flush(): void {
    if (this.#pending === 0) return;
    this.#child.inc(this.#pending);
    this.#pending = 0;
  }
}

const flushAll = (counts: Iterable<CountOnRead>): void => {
  for (const count of counts) count.flush();
};

export function createProxyMetrics(options: {
  activeSessions: () => number;
  snapshot: () => { version: string; loadedAt: number } | null;
  /** The session slot pools (handshake, pending): use, capacity and evictions. */
  pools?: () => ReadonlyArray<{ name: string; inUse: number; capacity: number; evictions: number }>;
  /** Distinct DNS queries in flight in the resolver. */
  dnsInFlight?: () => number;
}): ProxyMetrics {
  const registry = new client.Registry();
  const sessionChildren = new Map<string, CountOnRead>();
  const tenantChildren = new Map<string, CountOnRead>();
  const bytesChildren: CountOnRead[] = [];
  client.collectDefaultMetrics({ register: registry });
  const sessions = new client.Counter({
    name: 'socks4_sessions_total',
    help: 'Sessions ended, by command, reply code and refusal reason (reason="" when granted).',
    labelNames: ['command', 'reply', 'reason'] as const,
    registers: [registry],
    collect: () => flushAll(sessionChildren.values()),
  });
  new client.Gauge({
    name: 'socks4_active_sessions',
    help: 'Sessions open now, in any state.',
    registers: [registry],
    collect() {
      this.set(options.activeSessions());
    },
  });
  const pools = options.pools;
  if (pools !== undefined) {
    new client.Gauge({
      name: 'socks4_slots_in_use',
      help: 'Slots held in each session pool (handshake: reading the request; pending: awaiting DNS, limits, ident, connect or a BIND peer).',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        for (const pool of pools()) this.set({ pool: pool.name }, pool.inUse);
      },
    });
    new client.Gauge({
      name: 'socks4_slots_capacity',
      help: 'Size of each session pool; in use = capacity means saturated (/readyz fails).',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        for (const pool of pools()) this.set({ pool: pool.name }, pool.capacity);
      },
    });
    new client.Counter({
      name: 'socks4_slot_evictions_total',
      help: 'Sessions refused (91) to make room in a full pool or over their source share.',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools()) this.inc({ pool: pool.name }, pool.evictions);
      },
    });
  }
  const dnsInFlight = options.dnsInFlight;
  if (dnsInFlight !== undefined) {
    new client.Gauge({
      name: 'socks4_dns_queries_in_flight',
      help: 'Distinct SOCKS4a name queries the resolver is waiting on (capped by --dns-max-in-flight).',
      registers: [registry],
      collect() {
        this.set(dnsInFlight());
      },
    });
  }
  const handshake = new FastHistogram({
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
    collect: () => flushAll(bytesChildren),
  });
  const limitRejections = new client.Counter({
    name: 'socks4_limit_rejections_total',
    help: 'Sessions refused by a limit, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const phases = new FastHistogram({
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
  const tenantSessions = new client.Counter({
    name: 'socks4_tenant_sessions_total',
    help: `Decided sessions by the client's namespace (client_namespace="" when it is no known pod; the first ${MAX_NAMESPACE_LABELS} namespaces seen get their own value, later ones "${OTHER_NAMESPACES}"), the tier that decided and whether it allowed.`,
    labelNames: ['client_namespace', 'tier', 'decision'] as const,
    registers: [registry],
    collect: () => flushAll(tenantChildren.values()),
  });
  const namespaceLabels = new Set<string>();
  const limiterErrors = new client.Counter({
    name: 'socks4_limiter_errors_total',
    help: 'Failed calls to the shared limiter (Redis); decided by the configured fail mode.',
    registers: [registry],
  });

  const reportDecisions = new client.Counter({
    name: 'socks4_report_decisions_total',
    help: 'What Report-mode policies would have decided, by action (allow, deny) and reason; the sessions went on as if they were absent.',
    labelNames: ['action', 'reason'] as const,
    registers: [registry],
  });

  // The label is a guard name from one fixed table (GuardedRange): bounded, never an address.
  const guardRefusals = new client.Counter({
    name: 'socks4_guard_refusals_total',
    help: 'Sessions refused by the SSRF guard, by the address class or fleet endpoint that refused (private, loopback, redis, ...).',
    labelNames: ['guard'] as const,
    registers: [registry],
  });

  const refusedAtAccept = new client.Counter({
    name: 'socks4_connections_refused_total',
    help: 'Connections turned away at accept, before any request (draining, session or handshake cap).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const onRefused = (message: ConnectionRefusedEvent): void => {
    refusedAtAccept.inc({ reason: message.reason });
  };

  // prom-client hashes a labels object (sorting its keys) on every inc/observe; sessions end
  // thousands of times a second, so the labelled children are looked up once per label set
  // (profiled: ~3% of handshake CPU). The label sets are small and bounded, so are these maps.
  const handshakeChildren = new Map<string, HistogramChild>();
  const phaseChildren = new Map<string, HistogramChild>();
  const bytesUp = new CountOnRead(bytes.labels('upstream')); // two per session: bound once, like the maps above
  const bytesDown = new CountOnRead(bytes.labels('downstream'));
  bytesChildren.push(bytesUp, bytesDown);
  const onEnd = (s: SessionInfo): void => {
    const reply = s.replyCode === null ? 'none' : String(s.replyCode);
    const command = s.command ?? 'none';
    const reason = s.replyCode === 90 ? '' : (s.reason ?? '');
    const sessionKey = `${command}|${reply}|${reason}`;
    let counted = sessionChildren.get(sessionKey);
    if (counted === undefined)
      sessionChildren.set(sessionKey, (counted = new CountOnRead(sessions.labels(command, reply, reason))));
    counted.inc();
    if (s.handshakeMs !== null) {
      const handshakeKey = `${command}|${reply}`;
      let observed = handshakeChildren.get(handshakeKey);
      if (observed === undefined) handshakeChildren.set(handshakeKey, (observed = handshake.labels(command, reply)));
      observed.observe(s.handshakeMs / 1000);
    }
    if (s.bytesFromClient > 0) bytesUp.inc(s.bytesFromClient);
    if (s.bytesToClient > 0) bytesDown.inc(s.bytesToClient);
    if (s.report != null) reportDecisions.inc({ action: s.report.action, reason: s.report.reason });
    if (s.guard != null) guardRefusals.inc({ guard: s.guard });
    if (s.tier !== null) {
      let ns = s.namespace ?? '';
      // Bounded: namespaces are created by users; a label value per namespace must not grow forever.
      if (ns !== '' && !namespaceLabels.has(ns)) {
        if (namespaceLabels.size < MAX_NAMESPACE_LABELS) namespaceLabels.add(ns);
        else ns = OTHER_NAMESPACES;
      }
      const tenantKey = `${ns}|${s.tier}|${s.reason === 'RuleDenied' || s.reason === 'NoRuleMatched' || s.reason === 'GuardedDestination' ? 'deny' : 'allow'}`;
      let counted = tenantChildren.get(tenantKey);
      if (counted === undefined) {
        tenantChildren.set(
          tenantKey,
          (counted = new CountOnRead(tenantSessions.labels(...(tenantKey.split('|') as [string, string, string])))),
        );
      }
      counted.inc();
    }
    if (s.reason === 'RateLimited' || s.reason === 'ConcurrencyLimited') {
      limitRejections.inc({ kind: s.reason === 'RateLimited' ? 'connectionRate' : 'concurrentSessions' });
    }
  };
  const onPhase = (e: PhaseEvent): void => {
    const outcome = e.error ?? 'ok';
    const phaseKey = `${e.phase}|${outcome}`;
    let observed = phaseChildren.get(phaseKey);
    if (observed === undefined) phaseChildren.set(phaseKey, (observed = phases.labels(e.phase, outcome)));
    observed.observe((e.endedAt - e.startedAt) / 1000);
  };
  const onSnapshot = (e: SnapshotEvent): void => {
    snapshotInfo.reset();
    snapshotInfo.set({ version: e.version }, 1);
  };
  const onSnapshotError = (message: SourceErrorEvent): void => {
    snapshotErrors.inc({ source: message.source });
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
