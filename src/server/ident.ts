// RFC 1413 ident client, for rules with `ident: Optional | Required`. The parsing and the
// policy outcome are pure; queryIdent is the thin socket adapter around them.
//
// RFC 1413 §3: the query names the connection by port pair, "<port-on-server> , <port-on-client>",
// where "server" is the identd's host (the SOCKS client's machine) and "client" is us. The
// identd looks the connection up by its own address pair, so we must connect from the address
// that accepted the SOCKS client, or a multi-homed proxy would ask about a connection the identd
// cannot see.

import net from 'node:net';
import { Reason } from '../errors.ts';
import { unmapIpv4 } from '../policy/ip.ts';

export type IdentResult =
  | { readonly kind: 'user'; readonly user: string; readonly os: string }
  | { readonly kind: 'error'; readonly error: string }
  | { readonly kind: 'unreachable'; readonly detail: string };

export interface IdentQuery {
  /** The local address of the accepted SOCKS connection; the query leaves from it. */
  readonly localAddress?: string;
  /** The SOCKS client's address; its identd is asked. */
  readonly clientAddress: string;
  /** The SOCKS client's source port (the port on the identd's host). */
  readonly clientPort: number;
  /** Our port the SOCKS client connected to. */
  readonly serverPort: number;
  readonly identPort?: number;
  /** One budget for connect, query and reply. */
  readonly timeoutMs?: number;
  /** Aborts the query (client went away, drain); resolves as unreachable. */
  readonly signal?: AbortSignal;
}

export type IdentMode = 'Optional' | 'Required';
export type IdentOutcome = 'ok' | typeof Reason.IdentUnreachable | typeof Reason.IdentMismatch;

export const IDENT_PORT = 113;
export const DEFAULT_IDENT_TIMEOUT_MS = 10_000;
/** RFC 1413 §6 note 2: a client may give up after 1000 characters without an end of line. */
export const MAX_IDENT_REPLY_BYTES = 1000;

export function formatIdentQuery(clientPort: number, serverPort: number): string {
  return `${clientPort} , ${serverPort}\r\n`;
}

const REPLY = /^[ \t]*(\d{1,5})[ \t]*,[ \t]*(\d{1,5})[ \t]*:[ \t]*([A-Za-z]+)[ \t]*:(.*)$/s;
const unreachable = (detail: string): IdentResult => ({ kind: 'unreachable', detail });

/**
 * Parses one reply line (without its CR LF). A reply for another port pair, an unknown type or
 * a missing field is malformed, which the caller treats like an identd that did not answer.
 */
export function parseIdentReply(line: string, clientPort: number, serverPort: number): IdentResult {
  const m = REPLY.exec(line);
  if (m === null) return unreachable('malformed reply');
  const [, portOnServer, portOnClient, type = '', info = ''] = m;
  if (Number(portOnServer) !== clientPort || Number(portOnClient) !== serverPort) {
    return unreachable('reply for another port pair');
  }
  switch (type.toUpperCase()) {
    case 'ERROR': {
      const error = info.trim();
      return error === '' ? unreachable('malformed reply') : { kind: 'error', error };
    }
    case 'USERID': {
      const colon = info.indexOf(':');
      if (colon === -1) return unreachable('malformed reply');
      // opsys-field = opsys ["," charset]; the charset only labels the user id, which we compare
      // as UTF-8 like the request USERID.
      const os = (info.slice(0, colon).split(',')[0] ?? '').trim();
      // RFC 1413 §6 note 1: everything after the colon is the user id. Servers (and the RFC's own
      // example) put one space after the colon, so leading white space is dropped, nothing else.
      const user = info.slice(colon + 1).replace(/^[ \t]+/, '');
      if (os === '' || user === '') return unreachable('malformed reply');
      return { kind: 'user', user, os };
    }
    default:
      return unreachable('malformed reply');
  }
}

/**
 * Asks the client's identd who owns the SOCKS connection. Never rejects: every failure is an
 * `unreachable` result with a detail for logs. The socket is destroyed before it resolves.
 */
export function queryIdent(q: IdentQuery): Promise<IdentResult> {
  const { clientPort, serverPort, signal } = q;
  if (signal?.aborted) return Promise.resolve(unreachable('aborted'));
  return new Promise((resolve) => {
    const socket = net.connect({
      host: unmapIpv4(q.clientAddress),
      port: q.identPort ?? IDENT_PORT,
      ...(q.localAddress === undefined ? {} : { localAddress: unmapIpv4(q.localAddress) }),
    });
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;

    const settle = (result: IdentResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => settle(unreachable('aborted'));
    const timer = setTimeout(() => settle(unreachable('timeout')), q.timeoutMs ?? DEFAULT_IDENT_TIMEOUT_MS);
    signal?.addEventListener('abort', onAbort, { once: true });

    const settleWithLine = (bytes: Buffer): void => {
      const line = bytes.toString('utf8').replace(/\r$/, '');
      settle(parseIdentReply(line, clientPort, serverPort));
    };

    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(formatIdentQuery(clientPort, serverPort)));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const eol = all.indexOf(0x0a);
      if (eol !== -1 && eol < MAX_IDENT_REPLY_BYTES) settleWithLine(all.subarray(0, eol));
      else if (received >= MAX_IDENT_REPLY_BYTES) settle(unreachable('reply too long'));
    });
    // Lenient: a reply cut short of its CR LF by the server closing still counts.
    socket.on('end', () =>
      received > 0 ? settleWithLine(Buffer.concat(chunks)) : settle(unreachable('closed without reply')),
    );
    socket.on('error', (err: NodeJS.ErrnoException) => settle(unreachable(err.code ?? err.message)));
    socket.on('close', () => settle(unreachable('closed without reply')));
  });
}

/**
 * What the session does with an ident result (README, "Policy semantics": Required and
 * unreachable → 92, a different user → 93). An identd that answers ERROR did not vouch for anyone, so it counts as
 * unreachable. A user answer must match the request USERID exactly, in either mode: a client
 * that lies about its USERID is refused even where ident is only optional.
 */
export function identOutcome(result: IdentResult, requestUserId: string, mode: IdentMode): IdentOutcome {
  if (result.kind === 'user') return result.user === requestUserId ? 'ok' : Reason.IdentMismatch;
  return mode === 'Required' ? Reason.IdentUnreachable : 'ok';
}
