// One place where addresses take the form the proxy compares, logs and replies with. Dual-stack
// sockets report IPv4 peers as ::ffff:a.b.c.d, and a SOCKS4a name may spell an address the same
// way (or as ::ffff:7f00:1); SOCKS4 speaks IPv4 only, so each becomes a.b.c.d exactly once, here.
import net from 'node:net';

const MAPPED_DOTTED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const MAPPED_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/** An IPv4-mapped IPv6 address as dotted IPv4; any other string unchanged. */
export function normalizeAddress(address: string): string {
  const dotted = MAPPED_DOTTED.exec(address);
  if (dotted !== null && net.isIPv4(dotted[1]!)) return dotted[1]!;
  const hex = MAPPED_HEX.exec(address);
  if (hex !== null) {
    const high = parseInt(hex[1]!, 16);
    const low = parseInt(hex[2]!, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return address;
}
