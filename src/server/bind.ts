// SOCKS4 BIND: a listening socket on the proxy for one inbound connection from the application
// server. The spec: the first reply carries the listening address, the second reply is sent when
// the peer connects, and a peer from another address than DSTIP gets 91 with both closed.
import net from 'node:net';
import { Reason, SocksError } from '../errors.ts';

export interface BindListener {
  address: string;
  port: number;
  /** Resolves with the first inbound socket (paused); rejects on timeout or close. */
  accepted: Promise<net.Socket>;
  close(): void;
}

export async function openBindListener(host: string, acceptTimeoutMs: number): Promise<BindListener> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new SocksError(Reason.BindFailed, error.message, { cause: error })));
    server.listen({ host, port: 0, backlog: 1, exclusive: true }, resolve);
  });
  const bound = server.address() as net.AddressInfo;
  let timer: NodeJS.Timeout | undefined;
  let settle: ((error: SocksError) => void) | undefined;
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    settle = reject;
    timer = setTimeout(() => {
      server.close();
      reject(new SocksError(Reason.BindTimeout, `no inbound connection within ${acceptTimeoutMs} ms`));
    }, acceptTimeoutMs);
    // Exactly one peer: the listener closes on the first connection.
    server.once('connection', (socket) => {
      clearTimeout(timer);
      server.close();
      resolve(socket);
    });
  });
  return {
    address: bound.address,
    port: bound.port,
    accepted,
    close() {
      clearTimeout(timer);
      server.close();
      settle?.(new SocksError(Reason.ClientAborted, 'bind abandoned'));
    },
  };
}
