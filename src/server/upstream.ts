// Dialing the destination and resolving SOCKS4a names. The proxy connects to exactly the address
// the policy checked: names are resolved once, here, and the address is what gets evaluated.
import net from 'node:net';
import dns from 'node:dns';
import { Reason, SocksError } from '../errors.ts';

export interface ResolveOptions {
  /** The client's address: the resolver caps queries in flight per source. */
  readonly source?: string;
  /** Aborted when the session ends: the query is cancelled and its place freed. */
  readonly signal?: AbortSignal;
}

export type Resolver = (host: string, options?: ResolveOptions) => Promise<string>;

/**
 * getaddrinfo's answer, IPv4 only. The proxy resolves with resolver.ts (c-ares, deadlines, caps):
 * getaddrinfo runs on libuv's 4 threads without a timeout, so a few silent names starve every
 * other lookup. Kept for tests and tools that want the system's own view.
 */
export const resolveIPv4: Resolver = async (host) => {
  try {
    const { address } = await dns.promises.lookup(host, { family: 4 });
    return address;
  } catch (error) {
    throw new SocksError(Reason.DnsFailed, `cannot resolve host`, { cause: error });
  }
};

function reasonForConnectError(error: NodeJS.ErrnoException): SocksError {
  const reason = error.code === 'ECONNREFUSED' ? Reason.UpstreamRefused : Reason.UpstreamUnreachable;
  return new SocksError(reason, error.message, { cause: error });
}

/**
 * Connects to ip:port within timeoutMs; the socket comes back paused and half-open capable.
 * timeoutMs 0: no timer here, the caller keeps the deadline (a session's is its server's sweep).
 */
export function connectUpstream(
  ip: string,
  port: number,
  timeoutMs: number,
  localAddress?: string,
): { socket: net.Socket; connected: Promise<net.Socket> } {
  const socket = net.connect({
    host: ip,
    port,
    allowHalfOpen: true,
    noDelay: true,
    ...(localAddress === undefined ? {} : { localAddress }),
  });
  const connected = new Promise<net.Socket>((resolve, reject) => {
    // `on` and one removal when settled: a `once` wrapper costs two objects, three per session.
    const settle = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      socket.removeListener('connect', onConnect);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    const timer =
      timeoutMs === 0
        ? undefined
        : setTimeout(() => {
            socket.destroy();
            reject(new SocksError(Reason.UpstreamTimeout, `no connection within ${timeoutMs} ms`));
          }, timeoutMs);
    // Destroyed before connecting (the client went away): settle now, not at the timeout.
    const onClose = (): void => {
      settle();
      reject(new SocksError(Reason.ClientAborted, 'connect abandoned'));
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      settle();
      reject(reasonForConnectError(error));
    };
    // Settled: the close at the end of every relayed session must not build an Error (with its
    // stack trace) for a promise nobody awaits any more (profiled: ~3% of handshake CPU).
    const onConnect = (): void => {
      settle();
      socket.pause();
      resolve(socket);
    };
    socket.on('connect', onConnect);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
  return { socket, connected };
}
