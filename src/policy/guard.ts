// The SSRF guard. `0.0.0.0/0` means the public internet: an Allow rule written for it (or host
// globs whose names an attacker can point anywhere with DNS) must not open the non-public space
// behind the proxy, nor the fleet's own infrastructure. So:
// - every special-purpose IPv4 block below (an address class) opens only to an Allow rule one of
//   whose `to.cidrs` lies inside that block and contains the destination (`10.0.0.0/8` opens
//   10.x; `0.0.0.0/0` or `0.0.0.0/1` opens nothing);
// - the fleet's own endpoints (the proxy's own addresses, its Redis, the Kubernetes API, extra
//   `--guard-endpoint`s) stay guarded inside an opened block and open only to a rule naming
//   exactly that address as a /32.
//
// Compared with Smokescreen's classifyAddr (Go's IsGlobalUnicast + IsPrivate): it lets through
// 0.0.0.0/8 other than 0.0.0.0, CGNAT 100.64.0.0/10, 192.0.0.0/24, 198.18.0.0/15 and 240.0.0.0/4,
// reports two coarse classes, and its allow ranges open a guarded address from any range that
// contains it. Here each block is its own named class, shown in logs, spans, metrics and
// `policy explain`, and a block opens only to a rule that names something inside it.

import type { FleetEndpoint, FleetEndpoints } from './fleet-endpoints.ts';
import { formatIpv4, parseCidr, parseIpv4, NOT_IPV4 } from './ip.ts';
import type { Cidr } from './ip.ts';

export const GuardedRange = {
  // Address classes (IANA IPv4 Special-Purpose Address Registry, RFC 6890).
  ThisNetwork: 'this-network',
  Private: 'private',
  Cgnat: 'cgnat',
  Loopback: 'loopback',
  LinkLocal: 'link-local',
  IetfProtocol: 'ietf-protocol',
  Benchmarking: 'benchmarking',
  Multicast: 'multicast',
  Reserved: 'reserved',
  Broadcast: 'broadcast',
  // The fleet's own infrastructure.
  Self: 'self',
  Redis: 'redis',
  KubernetesApi: 'kubernetes-api',
  GuardEndpoint: 'guard-endpoint',
  /** The destination is not an IPv4 address, so nothing vouched for it. */
  NotIpv4: 'not-ipv4',
} as const;
export type GuardedRange = (typeof GuardedRange)[keyof typeof GuardedRange];

/** The kinds of fleet endpoint; each is also the guard name a refusal reports. */
export type FleetEndpointKind =
  | typeof GuardedRange.Redis
  | typeof GuardedRange.KubernetesApi
  | typeof GuardedRange.GuardEndpoint;

function block(text: string): Cidr {
  const c = parseCidr(text);
  if (c === null) throw new Error(`bad built-in CIDR ${text}`);
  return c;
}

export interface AddressClass {
  readonly range: GuardedRange;
  readonly cidr: Cidr;
  /** Where the block is defined and why it is not "the internet". */
  readonly why: string;
}

/**
 * The guarded blocks. First match wins, so a block nested in another comes before it (broadcast
 * inside 240.0.0.0/4); the others are disjoint (checked by the table test).
 */
export const ADDRESS_CLASSES: readonly AddressClass[] = [
  {
    range: GuardedRange.ThisNetwork,
    cidr: block('0.0.0.0/8'),
    why: 'RFC 1122 "this network"; Linux delivers 0.0.0.0 to the local host',
  },
  { range: GuardedRange.Private, cidr: block('10.0.0.0/8'), why: 'RFC 1918 private' },
  { range: GuardedRange.Cgnat, cidr: block('100.64.0.0/10'), why: 'RFC 6598 shared address space (carrier-grade NAT)' },
  { range: GuardedRange.Loopback, cidr: block('127.0.0.0/8'), why: 'RFC 1122 loopback' },
  {
    range: GuardedRange.LinkLocal,
    cidr: block('169.254.0.0/16'),
    why: 'RFC 3927 link-local; cloud metadata at 169.254.169.254',
  },
  { range: GuardedRange.Private, cidr: block('172.16.0.0/12'), why: 'RFC 1918 private' },
  { range: GuardedRange.IetfProtocol, cidr: block('192.0.0.0/24'), why: 'RFC 6890 IETF protocol assignments' },
  { range: GuardedRange.Private, cidr: block('192.168.0.0/16'), why: 'RFC 1918 private' },
  { range: GuardedRange.Benchmarking, cidr: block('198.18.0.0/15'), why: 'RFC 2544 benchmarking' },
  { range: GuardedRange.Multicast, cidr: block('224.0.0.0/4'), why: 'RFC 5771 multicast' },
  { range: GuardedRange.Broadcast, cidr: block('255.255.255.255/32'), why: 'RFC 919 limited broadcast' },
  { range: GuardedRange.Reserved, cidr: block('240.0.0.0/4'), why: 'RFC 1112 reserved for future use' },
];

/** The class of `ip` (uint32), or null for a public address. */
export function classifyAddress(ip: number): AddressClass | null {
  if (ip < 0) return null;
  for (const c of ADDRESS_CLASSES) if (ip >= c.cidr.start && ip <= c.cidr.end) return c;
  return null;
}

export interface GuardHit {
  readonly range: GuardedRange;
  /** The guarded block; for fleet endpoints the address as a /32; null for `not-ipv4`. */
  readonly cidr: Cidr | null;
  /** For a fleet endpoint other than `self`: which one (where it came from). */
  readonly endpoint?: FleetEndpoint;
}

const NOT_IPV4_HIT: GuardHit = { range: GuardedRange.NotIpv4, cidr: null };

/**
 * The self addresses as integers, computed once per set: the set is built at start and checked
 * on every allowed request, where formatting the destination back to text for a string lookup
 * cost two string allocations per decision (profiled). Re-derived if the set's size changes.
 */
const selfNumbers = new WeakMap<ReadonlySet<string>, { size: number; numbers: Set<number> }>();

function selfAddressNumbers(selfAddresses: ReadonlySet<string>): Set<number> {
  const cached = selfNumbers.get(selfAddresses);
  if (cached !== undefined && cached.size === selfAddresses.size) return cached.numbers;
  const numbers = new Set<number>();
  // Socket layers report addresses either way (`a.b.c.d`, `::ffff:a.b.c.d`); both parse alike.
  for (const text of selfAddresses) {
    const ip = parseIpv4(text);
    if (ip !== NOT_IPV4) numbers.add(ip);
  }
  selfNumbers.set(selfAddresses, { size: selfAddresses.size, numbers });
  return numbers;
}

function slash32(ip: number): Cidr {
  return { start: ip, end: ip, prefix: 32, text: `${formatIpv4(ip)}/32` };
}

const LOOPBACK = block('127.0.0.0/8');

/**
 * Which guard `ip`:`port` falls under, or null. Fleet endpoints come first: they stay guarded
 * inside an opened class. One exception: a self address inside loopback is governed by the
 * loopback class (every host owns all of 127.0.0.0/8, and naming `127.0.0.0/8` is how local
 * development opens it); a Redis or API endpoint on loopback is still guarded, by its port.
 */
export function classifyDestination(
  ip: number,
  selfAddresses: ReadonlySet<string>,
  fleet: FleetEndpoints | null = null,
  port = 0,
): GuardHit | null {
  if (ip < 0) return null;
  if (fleet !== null) {
    const endpoint = fleet.find(ip, port);
    if (endpoint !== null) return { range: endpoint.kind, cidr: slash32(ip), endpoint };
  }
  const isLoopback = ip >= LOOPBACK.start && ip <= LOOPBACK.end;
  if (!isLoopback && selfAddresses.size > 0 && selfAddressNumbers(selfAddresses).has(ip)) {
    return { range: GuardedRange.Self, cidr: slash32(ip) };
  }
  return classifyAddress(ip);
}

function isEndpoint(range: GuardedRange): boolean {
  return (
    range === GuardedRange.Self ||
    range === GuardedRange.Redis ||
    range === GuardedRange.KubernetesApi ||
    range === GuardedRange.GuardEndpoint
  );
}

/** True when one of the rule's destination CIDRs names the guarded destination explicitly. */
export function ruleOpensGuard(hit: GuardHit, ip: number, ruleCidrs: readonly Cidr[] | null): boolean {
  const guarded = hit.cidr;
  if (ruleCidrs === null || guarded === null) return false;
  const exact = isEndpoint(hit.range);
  for (const c of ruleCidrs) {
    if (ip < c.start || ip > c.end) continue;
    // A fleet endpoint opens only to a rule naming exactly that /32; a class to any block inside it.
    if (exact ? c.prefix === 32 : c.start >= guarded.start && c.end <= guarded.end) return true;
  }
  return false;
}

/**
 * The guard for an allow decision on `ip`:`port`: null when the destination may be reached, else
 * what refused it. `ip` < 0 (not an IPv4 address) is refused: nothing vouched for it.
 */
export function checkGuard(
  ip: number,
  port: number,
  selfAddresses: ReadonlySet<string>,
  fleet: FleetEndpoints | null,
  ruleCidrs: readonly Cidr[] | null,
): GuardHit | null {
  if (ip < 0) return NOT_IPV4_HIT;
  const hit = classifyDestination(ip, selfAddresses, fleet, port);
  if (hit === null || ruleOpensGuard(hit, ip, ruleCidrs)) return null;
  return hit;
}
