// A small real identd (RFC 1413 server) for tests: it reads one query line, records it with the
// peer address it came from, and answers what `respond` says.

import net from 'node:net';

/** Returned by `respond` to keep the connection open and never answer (timeout tests). */
export const SILENT: unique symbol = Symbol('identd-silent');

export interface IdentdQuery {
  /** The raw query line as received, CR LF included. */
  readonly line: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Settles when the querying side's connection is fully closed. */
  readonly closed: Promise<void>;
}

export interface IdentdOptions {
  /**
   * The reply for a query; the helper appends CR LF. null closes without answering; SILENT keeps
   * the connection open without answering. A query line that is not two ports gets
   * `INVALID-PORT` without calling respond.
   */
  readonly respond: (clientPort: number, serverPort: number) => string | null | typeof SILENT;
  readonly host?: string;
}

export interface Identd {
  readonly port: number;
  readonly host: string;
  readonly queries: readonly IdentdQuery[];
  close(): Promise<void>;
}

const QUERY = /^[ \t]*(\d{1,5})[ \t]*,[ \t]*(\d{1,5})[ \t]*\r?\n$/;
const MAX_QUERY_BYTES = 1000;

export async function startIdentd(opts: IdentdOptions): Promise<Identd> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  const queries: IdentdQuery[] = [];

  const server = net.createServer((socket) => {
    sockets.add(socket);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    void closed.then(() => sockets.delete(socket));
    socket.on('error', () => {}); // the querying side may reset; the test looks at `closed`
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('latin1');
      const eol = buffered.indexOf('\n');
      if (eol === -1) {
        if (buffered.length > MAX_QUERY_BYTES) socket.destroy();
        return;
      }
      socket.off('data', onData);
      const line = buffered.slice(0, eol + 1);
      queries.push({ line, remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, closed });
      const m = QUERY.exec(line);
      if (m === null) {
        socket.end(`0 , 0 : ERROR : INVALID-PORT\r\n`);
        return;
      }
      const reply = opts.respond(Number(m[1]), Number(m[2]));
      if (reply === SILENT) return;
      if (reply === null) socket.end();
      else socket.end(`${reply}\r\n`);
    };
    socket.on('data', onData);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('identd: no TCP address');

  return {
    port: address.port,
    host,
    queries,
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
