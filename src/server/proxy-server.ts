// The listener: accepts clients, enforces the caps on open sessions and on the two slot pools
// (sessions reading their request; sessions awaiting a decision, an upstream connect or a BIND
// peer), where the oldest yields to a newcomer and no source holds more than its share; and
// drains on shutdown (stop accepting, let sessions run for a grace period, then close them).
import net from 'node:net';
import os from 'node:os';
import { Reason } from '../errors.ts';
import { channels, type ConnectionRefusedEvent } from '../telemetry/events.ts';
import { unmapIpv4 } from '../policy/ip.ts';
import { encodeRefusal, Session, type SessionHooks } from './session.ts';
import type { SessionEnv } from './session-env.ts';
import { SlotPool, type PoolStats } from './slot-pool.ts';
import { DeadlineSweep, tickFor } from './deadline-sweep.ts';

export interface ProxyServer {
  /** reusePort: several processes (`--workers`) share the port; the kernel spreads connections. */
  listen(host: string, port: number, options?: { reusePort?: boolean }): Promise<net.AddressInfo>;
  /** Stops accepting; resolves when every session ended or the grace period closed them. */
  drain(graceMs?: number): Promise<void>;
  readonly draining: boolean;
  readonly activeSessions: number;
  /** Sessions still reading their request (the handshake pool). */
  readonly handshakesInProgress: number;
  /** Sessions past their request, not yet relaying: deciding, connecting, awaiting a BIND peer. */
  readonly pendingInProgress: number;
  /** Both pools, for /readyz and metrics. */
  pools(): PoolStats[];
}

/** Addresses of this host: destinations the SSRF guard refuses unless a rule names them. */
export function localAddresses(): Set<string> {
  const found = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) if (info.family === 'IPv4') found.add(info.address);
  }
  return found;
}

export function createProxyServer(env: SessionEnv): ProxyServer {
  const sessions = new Set<Session>();
  const config = env.config;
  let draining = false;
  let drained: (() => void) | null = null;

  // Each session is in at most one pool: `reading` from accept until its request is parsed, then
  // `pending` until it relays or ends. A session waiting two minutes for a SYN that is dropped
  // must not hold a slot that a client still typing its request needs, nor the other way round.
  // Behind a PROXY-protocol balancer every connection comes from the balancer until its header is
  // read, so the reading pool's share would lock everyone out: it applies once the pending pool
  // knows the real client.
  const reading = new SlotPool<Session>(
    'handshake',
    config.maxHandshakes,
    config.proxyProtocol ? 1 : config.sourceShare,
  );
  const pending = new SlotPool<Session>('pending', config.maxPending, config.sourceShare);
  // The event-loop turn that accepted each reader (see evictable below).
  const acceptedIn = new WeakMap<Session, number>();
  let turn = 0;
  let turnEnding = false;
  const currentTurn = (): number => {
    if (!turnEnding) {
      turnEnding = true;
      setImmediate(() => {
        turn++;
        turnEnding = false;
      });
    }
    return turn;
  };
  const onEnd = (session: Session): void => {
    sessions.delete(session);
    reading.delete(session);
    pending.delete(session);
    if (draining && sessions.size === 0) drained?.();
  };
  const evict = (pool: SlotPool<Session>, victim: { item: Session; overShare: boolean }, full: Reason): void => {
    pool.delete(victim.item);
    pool.evictions++;
    victim.item.fail(victim.overShare ? Reason.SourceShareExceeded : full);
  };
  /**
   * The request is read: the session moves to the pending pool. When that pool is full (or the
   * source holds its share of it) the oldest pending session yields — refused with 91 — so the
   * newcomer is served: a flood of connects to black holes can only churn its own share.
   */
  const onRequest = (session: Session): void => {
    reading.delete(session);
    const victim = pending.victimFor(session.clientAddress);
    if (victim !== null) evict(pending, victim, Reason.TooManyPending);
    pending.add(session, session.clientAddress);
  };
  const hooks: SessionHooks = {
    onRequest,
    onSettled: (session: Session): void => void pending.delete(session),
    onEnd,
    deadlines: new DeadlineSweep<Session>(tickFor(Math.min(config.handshakeTimeoutMs, config.connectTimeoutMs))),
    listening: null,
  };

  /**
   * A real client sends its request as soon as it connects and leaves the reading pool within a
   * round trip; slowloris clients (a byte every few seconds) would otherwise hold every slot and
   * lock everyone out until the handshake deadline. Readers accepted in this turn of the event
   * loop or the one before are never evicted: their request may be waiting unread (a busy loop
   * accepts a whole backlog at once, and the next turn may run accepts before it reads the
   * sockets it accepted).
   */
  const evictable =
    (now: number) =>
    (session: Session): boolean =>
      (acceptedIn.get(session) ?? now) < now - 1;

  /** Makes room for a newcomer from `source`; returns why it must be refused, or null. */
  const admit = (source: string, now: number): Reason | null => {
    if (draining) return Reason.Draining;
    const victim = reading.victimFor(source, evictable(now));
    if (victim !== null) evict(reading, victim, Reason.TooManyHandshakes);
    else if (reading.heldBy(source) >= reading.perSource) return Reason.SourceShareExceeded;
    if (sessions.size >= config.maxSessions) {
      // Every open session is past its request: the oldest reader yields, if there is one.
      const oldest = reading.oldest(evictable(now));
      if (oldest !== null) evict(reading, { item: oldest, overShare: false }, Reason.TooManyHandshakes);
    }
    if (sessions.size >= config.maxSessions) return Reason.TooManySessions;
    if (reading.full) return Reason.TooManyHandshakes;
    return null;
  };

  // pauseOnConnect: nothing is read until the session has its listeners in place.
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  server.on('connection', (socket) => {
    const source = unmapIpv4(socket.remoteAddress ?? '');
    const refusal = admit(source, currentTurn());
    if (refusal !== null) {
      // Over capacity: the client learns why at once instead of waiting for a timeout.
      if (channels.connectionRefused.hasSubscribers)
        channels.connectionRefused.publish({ reason: refusal } satisfies ConnectionRefusedEvent);
      socket.on('error', () => {});
      socket.end(encodeRefusal(refusal));
      socket.destroySoon();
      return;
    }
    const session = new Session(socket, env, hooks);
    sessions.add(session);
    reading.add(session, source);
    acceptedIn.set(session, turn);
    session.start();
    socket.resume();
  });
  server.on('error', () => {}); // accept errors (EMFILE) must not kill the process

  return {
    listen(host, port, options = {}) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, backlog: 4096, reusePort: options.reusePort === true }, () => {
          server.removeListener('error', reject);
          const bound = server.address() as net.AddressInfo;
          // One address (not 0.0.0.0 or ::): it is every session's local end, known without a syscall.
          const wildcard = net.isIPv4(bound.address) ? bound.address === '0.0.0.0' : bound.address === '::';
          hooks.listening = wildcard ? null : { address: unmapIpv4(bound.address), port: bound.port };
          resolve(bound);
        });
      });
    },
    async drain(graceMs = env.config.drainGraceMs) {
      draining = true;
      server.close(); // its callback waits for every connection; we wait only for the grace
      if (sessions.size === 0) return;
      // A second drain (a second SIGTERM) cuts the first one's grace short.
      if (drained !== null) return drained();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => drained?.(), graceMs);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      for (const session of [...sessions]) session.destroy(Reason.Draining);
    },
    get draining() {
      return draining;
    },
    get activeSessions() {
      return sessions.size;
    },
    get handshakesInProgress() {
      return reading.size;
    },
    get pendingInProgress() {
      return pending.size;
    },
    pools: () => [reading.stats(), pending.stats()],
  };
}
