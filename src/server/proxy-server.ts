// The listener: accepts clients, enforces the caps on open sessions and handshakes in progress
// (where the oldest handshake still reading its request yields to a newcomer), and drains on
// shutdown (stop accepting, let sessions run for a grace period, then close them).
import net from 'node:net';
import os from 'node:os';
import { Reason } from '../errors.ts';
import { encodeReply } from '../protocol/encode.ts';
import { ReplyCode } from '../protocol/constants.ts';
import { channels, type ConnectionRefusedEvent } from '../telemetry/events.ts';
import { Session } from './session.ts';
import type { SessionEnv } from './session-env.ts';

export interface ProxyServer {
  /** reusePort: several processes (`--workers`) share the port; the kernel spreads connections. */
  listen(host: string, port: number, options?: { reusePort?: boolean }): Promise<net.AddressInfo>;
  /** Stops accepting; resolves when every session ended or the grace period closed them. */
  drain(graceMs?: number): Promise<void>;
  readonly draining: boolean;
  readonly activeSessions: number;
  readonly handshakesInProgress: number;
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
  let handshakes = 0;
  let draining = false;
  let drained: (() => void) | null = null;

  // Sessions that may still be reading their request, oldest first, with the event-loop turn
  // that accepted them. Entries that moved on are dropped lazily, when the search below meets
  // them (each at most once).
  const readers = new Map<Session, number>();
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
    readers.delete(session);
    if (draining && sessions.size === 0) drained?.();
  };
  const hooks = { onHandshakeDone: (): void => void handshakes--, onEnd };
  const overCap = (): boolean => sessions.size >= env.config.maxSessions || handshakes >= env.config.maxHandshakes;

  /**
   * At a cap, the oldest session still reading its request yields its slot to the newcomer.
   * A real client sends its request as soon as it connects and leaves this state within a round
   * trip; slowloris clients (a byte every few seconds) would otherwise hold every slot and lock
   * everyone out until the handshake deadline. Sessions past their request (DNS, limits,
   * connect) are never evicted, nor those accepted in this turn of the event loop or the one
   * before: their request may be waiting unread (a busy loop accepts a whole backlog at once,
   * and the next turn may run accepts before it reads the sockets it accepted).
   */
  const evictOldestReader = (now: number): void => {
    for (const [session, accepted] of readers) {
      if (accepted >= now - 1) return; // and so is everyone after it
      readers.delete(session);
      if (session.state === 'handshake') return session.fail(Reason.TooManyHandshakes);
    }
  };

  // pauseOnConnect: nothing is read until the session has its listeners in place.
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  server.on('connection', (socket) => {
    const now = currentTurn();
    if (!draining && overCap()) evictOldestReader(now);
    const refusal =
      draining ? Reason.Draining
      : sessions.size >= env.config.maxSessions ? Reason.TooManySessions
      : handshakes >= env.config.maxHandshakes ? Reason.TooManyHandshakes
      : null;
    if (refusal !== null) {
      // Over capacity: the client learns why at once instead of waiting for a timeout.
      if (channels.connectionRefused.hasSubscribers) channels.connectionRefused.publish({ reason: refusal } satisfies ConnectionRefusedEvent);
      socket.on('error', () => {});
      socket.end(encodeReply(ReplyCode.Rejected, 0, '0.0.0.0'));
      socket.destroySoon();
      return;
    }
    const session = new Session(socket, env, hooks);
    sessions.add(session);
    handshakes++;
    readers.set(session, now);
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
          resolve(server.address() as net.AddressInfo);
        });
      });
    },
    async drain(graceMs = env.config.drainGraceMs) {
      draining = true;
      server.close(); // its callback waits for every connection; we wait only for the grace
      if (sessions.size === 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
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
      return handshakes;
    },
  };
}
