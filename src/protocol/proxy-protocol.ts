// HAProxy PROXY protocol v1 (text) and v2 (binary) header parser, for pods behind a load balancer
// that prepends the real client address. Pure, same result shape as the SOCKS4 parser.
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { Reason } from '../errors.ts';

export type ProxyHeader =
  /** Use the connection's own endpoints (v2 LOCAL, v1 UNKNOWN, v2 AF_UNSPEC). */
  { local: true } | { local: false; sourceAddress: string; sourcePort: number; destAddress: string; destPort: number };

export type ProxyParseResult =
  | { kind: 'incomplete' }
  | { kind: 'ok'; bytesRead: number; header: ProxyHeader }
  | { kind: 'invalid'; reason: typeof Reason.ProxyHeaderInvalid };

const INCOMPLETE: ProxyParseResult = Object.freeze({ kind: 'incomplete' });
const INVALID: ProxyParseResult = Object.freeze({ kind: 'invalid', reason: Reason.ProxyHeaderInvalid });
const LOCAL: ProxyHeader = Object.freeze({ local: true });

// v1: "PROXY " ... "\r\n". 107 bytes is the worst case line (UNKNOWN with two full IPv6 addresses
// and two 5-digit ports, CRLF included); the spec tells receivers to give up past it.
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_MAX_LENGTH = 107;
const LF = 0x0a;
const CR = 0x0d;

// v2: a 12-byte signature that cannot start any text protocol, then
// ver_cmd(1) fam(1) len(2, big-endian), then `len` bytes: addresses, then TLVs (skipped).
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEADER_LENGTH = 16;
const V2_VERSION = 0x2;
const V2_CMD_LOCAL = 0x0;
const V2_CMD_PROXY = 0x1;
const V2_AF_UNSPEC = 0x0;
const V2_AF_INET = 0x1;
const V2_AF_INET6 = 0x2;
const V2_PROTO_STREAM = 0x1;
// src addr, dst addr, src port, dst port.
const V2_INET_LENGTH = 4 + 4 + 2 + 2;
const V2_INET6_LENGTH = 16 + 16 + 2 + 2;

/**
 * Parses a PROXY v1 or v2 header from the start of `buf`. `bytesRead` on `ok` is where the
 * client's own bytes (the SOCKS4 request) begin.
 */
export function parseProxyHeader(buf: Buffer): ProxyParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  return INVALID;
}

/** True while the bytes seen so far agree with `expected` (a prefix of it counts). */
function matchesPrefix(buf: Buffer, expected: Buffer): boolean {
  const n = Math.min(buf.length, expected.length);
  return buf.compare(expected, 0, n, 0, n) === 0;
}

function parseV1(buf: Buffer): ProxyParseResult {
  if (!matchesPrefix(buf, V1_PREFIX)) return INVALID;
  const lf = buf.indexOf(LF, 0);
  if (lf === -1 || lf >= V1_MAX_LENGTH) return buf.length >= V1_MAX_LENGTH ? INVALID : INCOMPLETE;
  if (lf < V1_PREFIX.length || buf[lf - 1] !== CR) return INVALID;

  // "PROXY" SP proto SP src SP dst SP sport SP dport; single spaces, nothing else.
  const fields = buf.toString('latin1', V1_PREFIX.length, lf - 1).split(' ');
  const bytesRead = lf + 1;
  const proto = fields[0];
  // UNKNOWN: "the receiver must ignore anything presented before the CRLF is found".
  if (proto === 'UNKNOWN') return { kind: 'ok', bytesRead, header: LOCAL };
  if (fields.length !== 5 || (proto !== 'TCP4' && proto !== 'TCP6')) return INVALID;
  const [, src = '', dst = '', sport = '', dport = ''] = fields;
  const sourcePort = parseDecimalPort(sport);
  const destPort = parseDecimalPort(dport);
  if (sourcePort === -1 || destPort === -1) return INVALID;
  let sourceAddress: string;
  let destAddress: string;
  if (proto === 'TCP4') {
    if (!isIPv4(src) || !isIPv4(dst)) return INVALID;
    sourceAddress = src;
    destAddress = dst;
  } else {
    // A zone ID (`fe80::1%eth0`) names an interface on the sender's host: meaningless here.
    if (!isIPv6(src) || !isIPv6(dst) || src.includes('%') || dst.includes('%')) return INVALID;
    // Canonical text, so v1 and v2 senders yield the same strings for the same address.
    sourceAddress = canonicalIPv6(src);
    destAddress = canonicalIPv6(dst);
  }
  return { kind: 'ok', bytesRead, header: { local: false, sourceAddress, sourcePort, destAddress, destPort } };
}

/** "a decimal integer in the range [0..65535]"; no sign, no leading zeros. Returns -1 if not. */
function parseDecimalPort(text: string): number {
  if (text.length === 0 || text.length > 5 || (text.length > 1 && text.charCodeAt(0) === 0x30)) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value > 0xffff ? -1 : value;
}

function parseV2(buf: Buffer): ProxyParseResult {
  if (!matchesPrefix(buf, V2_SIGNATURE)) return INVALID;
  if (buf.length < V2_SIGNATURE.length + 1) return INCOMPLETE;
  const verCmd = buf[12]!;
  const command = verCmd & 0x0f;
  if (verCmd >> 4 !== V2_VERSION || (command !== V2_CMD_LOCAL && command !== V2_CMD_PROXY)) return INVALID;
  if (buf.length < V2_HEADER_LENGTH) return INCOMPLETE;
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  const length = buf.readUInt16BE(14);
  const bytesRead = V2_HEADER_LENGTH + length;
  if (buf.length < bytesRead) {
    // Refuse what no amount of waiting can fix before waiting for the whole block.
    return command === V2_CMD_PROXY && !isAcceptedV2Family(family, transport, length) ? INVALID : INCOMPLETE;
  }

  // LOCAL: "the receiver must accept this connection as valid and must use the real connection
  // endpoints and discard the protocol block including the family which is ignored."
  if (command === V2_CMD_LOCAL) return { kind: 'ok', bytesRead, header: LOCAL };
  if (!isAcceptedV2Family(family, transport, length)) return INVALID;
  // AF_UNSPEC under PROXY: the receiver may use the real endpoints; we do (as for v1 UNKNOWN).
  if (family === V2_AF_UNSPEC) return { kind: 'ok', bytesRead, header: LOCAL };

  const a = V2_HEADER_LENGTH;
  if (family === V2_AF_INET) {
    return {
      kind: 'ok',
      bytesRead,
      header: {
        local: false,
        sourceAddress: `${buf[a]}.${buf[a + 1]}.${buf[a + 2]}.${buf[a + 3]}`,
        destAddress: `${buf[a + 4]}.${buf[a + 5]}.${buf[a + 6]}.${buf[a + 7]}`,
        sourcePort: buf.readUInt16BE(a + 8),
        destPort: buf.readUInt16BE(a + 10),
      },
    };
  }
  return {
    kind: 'ok',
    bytesRead,
    header: {
      local: false,
      sourceAddress: formatIPv6(buf, a),
      destAddress: formatIPv6(buf, a + 16),
      sourcePort: buf.readUInt16BE(a + 32),
      destPort: buf.readUInt16BE(a + 34),
    },
  };
}

/**
 * A SOCKS4 proxy only carries TCP, so under PROXY we take TCP over IPv4/IPv6 (with room for the
 * addresses, as the spec requires of `len`) or AF_UNSPEC. UDP and AF_UNIX are refused: the spec
 * leaves the receiver free to reject families it does not support.
 */
function isAcceptedV2Family(family: number, transport: number, length: number): boolean {
  if (family === V2_AF_UNSPEC) return true;
  if (transport !== V2_PROTO_STREAM) return false;
  if (family === V2_AF_INET) return length >= V2_INET_LENGTH;
  if (family === V2_AF_INET6) return length >= V2_INET6_LENGTH;
  return false;
}

function formatIPv6(buf: Buffer, offset: number): string {
  let text = buf.readUInt16BE(offset).toString(16);
  for (let i = 2; i < 16; i += 2) text += ':' + buf.readUInt16BE(offset + i).toString(16);
  return canonicalIPv6(text);
}

/** RFC 5952 text (what Node reports for sockets), e.g. `2001:db8::1`, `::ffff:10.0.0.1`. */
function canonicalIPv6(address: string): string {
  return new SocketAddress({ address, family: 'ipv6' }).address;
}
