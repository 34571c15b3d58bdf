// Sorted, merged, inclusive integer ranges with binary-search membership: the compiled form of
// CIDR lists (uint32 addresses) and port lists.

export interface RangeSet {
  /** Range starts, ascending; ranges are disjoint and not adjacent. */
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;
}

export interface PortRange {
  readonly lo: number;
  readonly hi: number;
}

/** Builds a RangeSet, merging overlapping and adjacent ranges. */
export function buildRangeSet(ranges: readonly { readonly lo: number; readonly hi: number }[]): RangeSet {
  const sorted = [...ranges].sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const lo: number[] = [];
  const hi: number[] = [];
  for (const r of sorted) {
    const last = hi.length - 1;
    if (last >= 0 && r.lo <= (hi[last] ?? 0) + 1) {
      if (r.hi > (hi[last] ?? 0)) hi[last] = r.hi;
    } else {
      lo.push(r.lo);
      hi.push(r.hi);
    }
  }
  return { lo: Uint32Array.from(lo), hi: Uint32Array.from(hi) };
}

/** Membership test; any negative `x` (an unparseable address) is in no set. */
export function rangeSetHas(set: RangeSet, x: number): boolean {
  const { lo, hi } = set;
  let left = 0;
  let right = lo.length - 1;
  // Find the last range whose start is <= x.
  while (left <= right) {
    const mid = (left + right) >>> 1;
    if ((lo[mid] as number) <= x) left = mid + 1;
    else right = mid - 1;
  }
  return right >= 0 && x <= (hi[right] as number) && x >= 0;
}

const PORT_RE = /^([0-9]+)$/;
const PORT_RANGE_RE = /^([0-9]+)-([0-9]+)$/;
export const MIN_PORT = 1;
export const MAX_PORT = 65535;

export type PortSpecResult = { ok: true; range: PortRange } | { ok: false; message: string };

/** Parses `"443"` or `"8000-8999"` with 1 <= A <= B <= 65535. */
export function parsePortSpec(text: string): PortSpecResult {
  const quoted = JSON.stringify(text);
  const single = PORT_RE.exec(text);
  if (single) {
    const port = Number(single[1]);
    if (port < MIN_PORT || port > MAX_PORT) return { ok: false, message: `${quoted} is not a port` };
    return { ok: true, range: { lo: port, hi: port } };
  }
  const range = PORT_RANGE_RE.exec(text);
  if (range) {
    const lo = Number(range[1]);
    const hi = Number(range[2]);
    if (lo < MIN_PORT || hi > MAX_PORT || hi < MIN_PORT || lo > MAX_PORT) {
      return { ok: false, message: `${quoted} is not a port range: ports are ${MIN_PORT}-${MAX_PORT}` };
    }
    if (lo > hi) return { ok: false, message: `${quoted} is not a port range: ${lo} is greater than ${hi}` };
    return { ok: true, range: { lo, hi } };
  }
  return { ok: false, message: `${quoted} is not a port or port range (like "443" or "8000-8999")` };
}
