// The SSRF guard. An Allow rule written for "the internet" (`0.0.0.0/0`, or host globs whose
// names an attacker can point anywhere with DNS) must not open the proxy's own loopback, the
// cloud metadata service (link-local), `0.0.0.0/8` (which Linux routes to the local host) or the
// proxy's own addresses. Those open only when the allowing rule names them: one of its
// `to.cidrs` lies inside the guarded range and contains the destination.

import { formatIpv4, NOT_IPV4, parseCidr, parseIpv4 } from './ip.ts';
import type { Cidr } from './ip.ts';

export const GuardedRange = {
  Loopback: 'loopback',
  LinkLocal: 'link-local',
  ThisNetwork: 'this-network',
  Self: 'self',
  /** The destination is not an IPv4 address, so nothing vouched for it. */
  NotIpv4: 'not-ipv4',
} as const;
export type GuardedRange = (typeof GuardedRange)[keyof typeof GuardedRange];

function block(text: string): Cidr {
  const c = parseCidr(text);
  if (c === null) throw new Error(`bad built-in CIDR ${text}`);
  return c;
}

export const GUARDED_BLOCKS: readonly { readonly range: GuardedRange; readonly cidr: Cidr }[] = [
  { range: GuardedRange.Loopback, cidr: block('127.0.0.0/8') },
  { range: GuardedRange.LinkLocal, cidr: block('169.254.0.0/16') },
  { range: GuardedRange.ThisNetwork, cidr: block('0.0.0.0/8') },
];

export interface GuardHit {
  readonly range: GuardedRange;
  /** The guarded block; for `self`, the address as a /32; null for `not-ipv4`. */
  readonly cidr: Cidr | null;
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

/**
 * Which guarded range `ip` falls in, or null. The fixed blocks take precedence over self
 * addresses: a self address inside loopback is governed by the loopback rule, so naming
 * `127.0.0.0/8` keeps working for local development.
 */
export function classifyDestination(ip: number, selfAddresses: ReadonlySet<string>): GuardHit | null {
  if (ip < 0) return null;
  for (const g of GUARDED_BLOCKS) if (ip >= g.cidr.start && ip <= g.cidr.end) return g;
  if (selfAddresses.size === 0 || !selfAddressNumbers(selfAddresses).has(ip)) return null;
  return { range: GuardedRange.Self, cidr: { start: ip, end: ip, prefix: 32, text: `${formatIpv4(ip)}/32` } };
}

/** True when one of the rule's destination CIDRs names the guarded destination explicitly. */
export function ruleOpensGuard(hit: GuardHit, ip: number, ruleCidrs: readonly Cidr[] | null): boolean {
  const guarded = hit.cidr;
  if (ruleCidrs === null || guarded === null) return false;
  for (const c of ruleCidrs) {
    if (ip < c.start || ip > c.end) continue;
    // A self address opens only to a rule naming exactly that /32.
    if (hit.range === GuardedRange.Self ? c.prefix === 32 : c.start >= guarded.start && c.end <= guarded.end) return true;
  }
  return false;
}

/**
 * The guard for an allow decision on `ip`: null when the destination may be reached, else the
 * range that refused it. `ip` < 0 (not an IPv4 address) is refused: nothing vouched for it.
 */
export function checkGuard(ip: number, selfAddresses: ReadonlySet<string>, ruleCidrs: readonly Cidr[] | null): GuardHit | null {
  if (ip < 0) return NOT_IPV4_HIT;
  const hit = classifyDestination(ip, selfAddresses);
  if (hit === null || ruleOpensGuard(hit, ip, ruleCidrs)) return null;
  return hit;
}
