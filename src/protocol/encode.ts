// SOCKS4 encoders: the 8-byte reply the server sends, and requests (for tests and tools).

import { Command, REPLY_LENGTH, REPLY_VERSION, ReplyCode, SOCKS_VERSION } from './constants.ts';
import type { Socks4Request } from './parse-request.ts';
import { NOT_IPV4, parseIpv4 } from '../policy/ip.ts';

/**
 * Encodes a reply: VN(1)=0 CD(1) DSTPORT(2) DSTIP(4). Port and address only mean something on a
 * granted BIND ("the port number and the IP address of that socket"); 0.0.0.0 there tells the
 * client to substitute the server's address. `ip` may be an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`), which is how Node reports IPv4 peers of dual-stack sockets.
 */
export function encodeReply(code: ReplyCode, port = 0, ip = '0.0.0.0'): Buffer {
  if (
    code !== ReplyCode.Granted &&
    code !== ReplyCode.Rejected &&
    code !== ReplyCode.IdentUnreachable &&
    code !== ReplyCode.IdentMismatch
  ) {
    throw new RangeError(`not a SOCKS4 reply code: ${String(code)}`);
  }
  const out = Buffer.allocUnsafe(REPLY_LENGTH);
  out[0] = REPLY_VERSION;
  out[1] = code;
  writePort(out, 2, port);
  writeIPv4(out, 4, ip);
  return out;
}

/**
 * Encodes a request. A non-null `host` makes it SOCKS4a: DSTIP is `ip` when that already is a
 * 0.0.0.x marker (x != 0), else 0.0.0.1. The parser's limits (port 0, long or empty names) are
 * deliberately not enforced, so tests can build requests the server must refuse; only what
 * cannot be represented at all (a NUL inside a string, a bad address) throws.
 */
export function encodeRequest(req: Socks4Request): Buffer {
  const isMarker = isSocks4aMarker(req.ip);
  if (req.host === null && isMarker) {
    throw new RangeError(`DSTIP ${req.ip} marks a SOCKS4a request but host is null`);
  }
  rejectNul('userId', req.userId);
  const userIdLength = Buffer.byteLength(req.userId, 'utf8');
  let hostLength = 0;
  if (req.host !== null) {
    rejectNul('host', req.host);
    hostLength = Buffer.byteLength(req.host, 'utf8') + 1;
  }

  const out = Buffer.allocUnsafe(8 + userIdLength + 1 + hostLength);
  out[0] = SOCKS_VERSION;
  out[1] = req.command === 'connect' ? Command.Connect : Command.Bind;
  writePort(out, 2, req.port);
  writeIPv4(out, 4, req.host !== null && !isMarker ? '0.0.0.1' : req.ip);
  let offset = 8 + out.write(req.userId, 8, 'utf8');
  out[offset++] = 0;
  if (req.host !== null) {
    offset += out.write(req.host, offset, 'utf8');
    out[offset] = 0;
  }
  return out;
}

function isSocks4aMarker(ip: string): boolean {
  return ip.startsWith('0.0.0.') && ip !== '0.0.0.0';
}

function rejectNul(field: string, value: string): void {
  if (value.includes('\0')) throw new RangeError(`${field} contains a NUL, which ends it on the wire`);
}

function writePort(out: Buffer, offset: number, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`not a port: ${String(port)}`);
  }
  out[offset] = port >>> 8;
  out[offset + 1] = port & 0xff;
}

/**
 * Writes a dotted quad (no leading zeros, as `net.isIPv4` accepts) or an IPv4-mapped IPv6 address
 * as 4 bytes; throws otherwise. The one IPv4 parser (src/policy/ip.ts, a leaf with no imports).
 */
function writeIPv4(out: Buffer, offset: number, ip: string): void {
  const value = parseIpv4(ip);
  if (value === NOT_IPV4) throw notIPv4(ip);
  out.writeUInt32BE(value, offset);
}

function notIPv4(ip: string): RangeError {
  return new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
}
