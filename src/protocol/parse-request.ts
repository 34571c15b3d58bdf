// SOCKS4 / SOCKS4a request parser. Pure: bytes in, a typed result out; no sockets, no timers.
//
//   +----+----+----+----+----+----+----+----+----+....+----+----+....+----+
//   | VN | CD | DSTPORT | DSTIP             | USERID    |NUL | HOST (4a) |NUL |
//   +----+----+----+----+----+----+----+----+----+....+----+----+....+----+
//     1    1      2            4              variable   1    variable   1
//
// SOCKS4a: DSTIP 0.0.0.x with x != 0 means "no address, the name follows USERID's NUL".
// 0.0.0.0 is not a 4a marker; it is a plain (if useless) address left to the policy guard.
//
// Each check runs as soon as the bytes it needs have arrived, so a client that is not speaking
// SOCKS4 (or is sending an endless USERID) is turned away without waiting for more input.

import { Reason } from '../errors.ts';
import { Command, MAX_HOSTNAME_BYTES, MAX_USERID_BYTES, SOCKS_VERSION } from './constants.ts';

export type Socks4Command = 'connect' | 'bind';

export interface Socks4Request {
  command: Socks4Command;
  port: number;
  /** DSTIP, dotted quad; for SOCKS4a the 0.0.0.x marker as sent. */
  ip: string;
  /** USERID decoded as UTF-8 (may be empty). */
  userId: string;
  /** The SOCKS4a host name (UTF-8), or null for a plain SOCKS4 request. */
  host: string | null;
}

/** The reasons the parser can give; `BadVersion` means "close without a reply". */
export type RequestInvalidReason =
  | typeof Reason.BadVersion
  | typeof Reason.BadCommand
  | typeof Reason.ZeroPort
  | typeof Reason.UserIdTooLong
  | typeof Reason.HostnameTooLong
  | typeof Reason.EmptyHostname;

export type ParseResult =
  | { kind: 'incomplete' }
  | { kind: 'ok'; request: Socks4Request; bytesRead: number }
  | { kind: 'invalid'; reason: RequestInvalidReason };

// VN(1) CD(1) DSTPORT(2) DSTIP(4): the part before USERID.
const FIXED_LENGTH = 8;

// Results without per-call data are shared (frozen, so no caller can alter them for the next one).
const INCOMPLETE: ParseResult = Object.freeze({ kind: 'incomplete' });
const invalidResults = new Map<RequestInvalidReason, ParseResult>();
for (const reason of [
  Reason.BadVersion,
  Reason.BadCommand,
  Reason.ZeroPort,
  Reason.UserIdTooLong,
  Reason.HostnameTooLong,
  Reason.EmptyHostname,
] as const) {
  invalidResults.set(reason, Object.freeze({ kind: 'invalid', reason }));
}
function invalid(reason: RequestInvalidReason): ParseResult {
  return invalidResults.get(reason)!;
}

/**
 * Parses one request from the start of `buf`. `bytesRead` on `ok` is where the request ends:
 * anything after it is client data that arrived in the same packet and must be relayed.
 */
export function parseRequest(buf: Buffer): ParseResult {
  const length = buf.length;
  if (length === 0) return INCOMPLETE;
  if (buf[0] !== SOCKS_VERSION) return invalid(Reason.BadVersion);
  if (length < 2) return INCOMPLETE;
  const cd = buf[1];
  if (cd !== Command.Connect && cd !== Command.Bind) return invalid(Reason.BadCommand);
  if (length < 4) return INCOMPLETE;
  const port = (buf[2]! << 8) | buf[3]!;
  if (port === 0) return invalid(Reason.ZeroPort);
  if (length < FIXED_LENGTH) return INCOMPLETE;

  const userIdEnd = buf.indexOf(0, FIXED_LENGTH);
  if (userIdEnd === -1) {
    // More than the limit already seen without a NUL: no continuation can make it valid.
    return length - FIXED_LENGTH > MAX_USERID_BYTES ? invalid(Reason.UserIdTooLong) : INCOMPLETE;
  }
  if (userIdEnd - FIXED_LENGTH > MAX_USERID_BYTES) return invalid(Reason.UserIdTooLong);

  const a = buf[4]!;
  const b = buf[5]!;
  const c = buf[6]!;
  const d = buf[7]!;
  const command: Socks4Command = cd === Command.Connect ? 'connect' : 'bind';
  const ip = `${a}.${b}.${c}.${d}`;
  const userId = userIdEnd === FIXED_LENGTH ? '' : buf.toString('utf8', FIXED_LENGTH, userIdEnd);

  if (a !== 0 || b !== 0 || c !== 0 || d === 0) {
    return { kind: 'ok', request: { command, port, ip, userId, host: null }, bytesRead: userIdEnd + 1 };
  }

  const hostStart = userIdEnd + 1;
  const hostEnd = buf.indexOf(0, hostStart);
  if (hostEnd === -1) {
    return length - hostStart > MAX_HOSTNAME_BYTES ? invalid(Reason.HostnameTooLong) : INCOMPLETE;
  }
  if (hostEnd === hostStart) return invalid(Reason.EmptyHostname);
  if (hostEnd - hostStart > MAX_HOSTNAME_BYTES) return invalid(Reason.HostnameTooLong);
  const host = buf.toString('utf8', hostStart, hostEnd);
  return { kind: 'ok', request: { command, port, ip, userId, host }, bytesRead: hostEnd + 1 };
}
