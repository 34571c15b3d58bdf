// IPv4 addresses as unsigned 32-bit integers. Policies are IPv4-only (SOCKS4 carries IPv4), but
// dual-stack sockets report clients as IPv4-mapped IPv6 (`::ffff:1.2.3.4`), so that form is
// accepted everywhere an address is read.

/** Returned for anything that is not an IPv4 (or IPv4-mapped) address. */
export const NOT_IPV4 = -1;

export interface Cidr {
  /** Network address (host bits cleared). */
  readonly start: number;
  /** Last address in the block. */
  readonly end: number;
  readonly prefix: number;
  /** Canonical text, e.g. `10.0.0.0/8`. */
  readonly text: string;
}

const DOT = 46;
const ZERO = 48;

/**
 * Parses dotted-quad IPv4 in `s` from `from` to the end. Strict: four decimal octets, no leading
 * zeros (`010.0.0.1` is octal to some parsers and decimal to others; refusing it avoids both).
 */
function parseDotted(s: string, from: number): number {
  let value = 0;
  let octets = 0;
  let i = from;
  const n = s.length;
  while (octets < 4) {
    const begin = i;
    let octet = 0;
    while (i < n && i - begin < 4) {
      const c = s.charCodeAt(i) - ZERO;
      if (c < 0 || c > 9) break;
      octet = octet * 10 + c;
      i++;
    }
    const digits = i - begin;
    if (digits === 0 || digits > 3 || octet > 255) return NOT_IPV4;
    if (digits > 1 && s.charCodeAt(begin) === ZERO) return NOT_IPV4;
    value = value * 256 + octet;
    octets++;
    if (octets < 4) {
      if (i >= n || s.charCodeAt(i) !== DOT) return NOT_IPV4;
      i++;
    }
  }
  return i === n ? value : NOT_IPV4;
}

/** Expands any IPv6 text form to 8 groups; null when malformed. */
function parseIpv6Groups(s: string): number[] | null {
  if (s.length > 45 || s.includes('%')) return null;
  let head = s;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    const v4 = parseDotted(s, lastColon + 1);
    if (v4 === NOT_IPV4) return null;
    tail = [Math.floor(v4 / 65536), v4 % 65536];
    head = s.slice(0, lastColon + 1);
    // Keep a trailing `::` (`::1.2.3.4`); drop a single separator colon (`::ffff:1.2.3.4`).
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const double = head.indexOf('::');
  let groups: number[];
  if (double === -1) {
    const all = parseGroups(head);
    if (all === null) return null;
    groups = [...all, ...tail];
    if (groups.length !== 8) return null;
  } else {
    if (head.indexOf('::', double + 1) !== -1) return null;
    const left = parseGroups(head.slice(0, double));
    const right = parseGroups(head.slice(double + 2));
    if (left === null || right === null) return null;
    const known = left.length + right.length + tail.length;
    if (known > 7) return null;
    groups = [...left, ...new Array<number>(8 - known).fill(0), ...right, ...tail];
  }
  return groups;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (any spelling), or NOT_IPV4. */
function parseMapped(s: string): number {
  const g = parseIpv6Groups(s);
  if (g === null) return NOT_IPV4;
  for (let i = 0; i < 5; i++) if (g[i] !== 0) return NOT_IPV4;
  if (g[5] !== 0xffff) return NOT_IPV4;
  return (g[6] ?? 0) * 65536 + (g[7] ?? 0);
}

function hasMappedPrefix(s: string): boolean {
  // `::ffff:` in any letter case: what Node reports for IPv4 clients of a dual-stack listener.
  return (
    s.length > 7 &&
    s.charCodeAt(0) === 58 &&
    s.charCodeAt(1) === 58 &&
    s.charCodeAt(6) === 58 &&
    s.slice(2, 6).toLowerCase() === 'ffff'
  );
}

/** Parses an IPv4 or IPv4-mapped IPv6 address to uint32; NOT_IPV4 otherwise. Allocation-free on the common forms. */
export function parseIpv4(s: string): number {
  if (s.length === 0) return NOT_IPV4;
  const first = s.charCodeAt(0);
  if (first >= ZERO && first <= ZERO + 9) {
    const v = parseDotted(s, 0);
    if (v !== NOT_IPV4) return v;
  } else if (hasMappedPrefix(s)) {
    const v = parseDotted(s, 7);
    if (v !== NOT_IPV4) return v;
  }
  return s.includes(':') ? parseMapped(s) : NOT_IPV4;
}

/**
 * An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, `::ffff:7f00:1`, any spelling) as dotted IPv4;
 * any other string unchanged. Dual-stack sockets report IPv4 peers in the mapped form and a
 * SOCKS4a name may spell an address that way; SOCKS4 speaks IPv4 only, so clients, BIND peers,
 * resolver answers and pod addresses are all compared, logged and replied with as a.b.c.d.
 */
export function unmapIpv4(address: string): string {
  if (!address.includes(':')) return address;
  // The common form costs one slice: parseDotted accepted only canonical text (no leading zeros).
  if (hasMappedPrefix(address) && parseDotted(address, 7) !== NOT_IPV4) return address.slice(7);
  const v4 = parseMapped(address);
  return v4 === NOT_IPV4 ? address : formatIpv4(v4);
}

export function formatIpv4(ip: number): string {
  return `${(ip >>> 24) & 255}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

const PREFIX_RE = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Parses `a.b.c.d/n`, a bare address (a /32), or an IPv4-mapped block `::ffff:a.b.c.d/96+n`.
 * Host bits are cleared (`10.1.2.3/8` means `10.0.0.0/8`); returns null for anything else.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const mapped = addrText.includes(':');
  const addr = mapped ? parseMapped(addrText) : parseDotted(addrText, 0);
  if (addr === NOT_IPV4) return null;
  let prefix = 32;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!PREFIX_RE.test(p)) return null;
    prefix = Number(p);
    if (mapped) {
      if (prefix < 96 || prefix > 128) return null;
      prefix -= 96;
    } else if (prefix > 32) {
      return null;
    }
  }
  const size = 2 ** (32 - prefix);
  const start = addr - (addr % size);
  return { start, end: start + size - 1, prefix, text: `${formatIpv4(start)}/${prefix}` };
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.start >= outer.start && inner.end <= outer.end;
}
