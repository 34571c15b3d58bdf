// PROXY protocol headers (haproxy's proxy-protocol.txt) as a load balancer in front of the proxy
// sends them, written out byte by byte so the tests do not depend on the codec they check.

const V2_SIGNATURE = '0d0a0d0a000d0a515549540a';

/** A v1 PROXY TCP4 line from `source`:`sourcePort` to 127.0.0.1:1080. */
export const proxyV1 = (source: string, sourcePort = 40_000): Buffer =>
  Buffer.from(`PROXY TCP4 ${source} 127.0.0.1 ${sourcePort} 1080\r\n`, 'latin1');

/** A v2 PROXY/TCP4 header: signature, version 2 command PROXY, AF_INET/STREAM, 12 address bytes. */
export function proxyV2(source: string, sourcePort = 40_001): Buffer {
  const head = Buffer.from(`${V2_SIGNATURE}2111000c`, 'hex');
  const body = Buffer.alloc(12);
  source.split('.').forEach((octet, i) => (body[i] = Number(octet)));
  [127, 0, 0, 1].forEach((octet, i) => (body[4 + i] = octet));
  body.writeUInt16BE(sourcePort, 8);
  body.writeUInt16BE(1080, 10);
  return Buffer.concat([head, body]);
}

/**
 * A v2 PROXY/TCP6 header whose source is the IPv4-mapped `::ffff:<source>`: what a dual-stack
 * load balancer sends for an IPv4 client. 36 address bytes: source, destination ::1, two ports.
 */
export function proxyV2Mapped(source: string, sourcePort: number): Buffer {
  const head = Buffer.from(`${V2_SIGNATURE}21210024`, 'hex');
  const body = Buffer.alloc(36);
  body.writeUInt16BE(0xffff, 10);
  source.split('.').forEach((octet, i) => (body[12 + i] = Number(octet)));
  body[31] = 1;
  body.writeUInt16BE(sourcePort, 32);
  body.writeUInt16BE(1080, 34);
  return Buffer.concat([head, body]);
}
