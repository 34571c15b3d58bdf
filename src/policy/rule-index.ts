// An optional index that narrows the first-match scan for large rule sets.
//
// One dimension is chosen at compile time:
// - numeric (destination port, source address, destination address): the value space is cut
//   into elementary intervals at every range boundary rules use; each interval lists, in rule
//   order, the rules whose ranges cover it;
// - exact names (USERID, host): a Map from each exact name rules list to those rules.
// Rules that leave the dimension open (or use globs, or span too many intervals) stay in one
// `general` list. Evaluation merges the key's list with `general` by position, so the
// first-match order is exactly that of a plain linear scan.

import type { GlobMatcher } from './glob.ts';
import type { RangeSet } from './ranges.ts';

export const IndexDimension = {
  None: 'none', Port: 'port', Source: 'source', Destination: 'destination', UserId: 'userid', Host: 'host',
} as const;
export type IndexDimension = (typeof IndexDimension)[keyof typeof IndexDimension];

export type RangeDimension = typeof IndexDimension.Port | typeof IndexDimension.Source | typeof IndexDimension.Destination;
export type NameDimension = typeof IndexDimension.UserId | typeof IndexDimension.Host;

export interface RuleIndex {
  readonly dimension: IndexDimension;
  /** Numeric dimensions: interval starts, ascending; starts[0] = 0. */
  readonly starts: Float64Array;
  /** Numeric dimensions: rule positions per interval, ascending. */
  readonly buckets: readonly Int32Array[];
  /** Name dimensions: rule positions per exact name, ascending. */
  readonly names: ReadonlyMap<string, Int32Array>;
  /** Rule positions that are candidates for every key, ascending. */
  readonly general: Int32Array;
}

/** A rule covering more intervals or names than this is cheaper to keep in `general`. */
const MAX_KEYS_PER_RULE = 32;
/** Below this many rules a linear scan beats any index. */
const MIN_RULES_TO_INDEX = 64;

const EMPTY = new Int32Array(0);
const NO_NAMES: ReadonlyMap<string, Int32Array> = new Map();

export function buildNoIndex(ruleCount: number): RuleIndex {
  return {
    dimension: IndexDimension.None,
    starts: Float64Array.of(0),
    buckets: [EMPTY],
    names: NO_NAMES,
    general: Int32Array.from({ length: ruleCount }, (_, i) => i),
  };
}

function buildRangeIndex(dimension: RangeDimension, sets: readonly (RangeSet | null)[]): RuleIndex {
  const boundaries = new Set<number>([0]);
  for (const set of sets) {
    if (set === null) continue;
    for (let i = 0; i < set.lo.length; i++) {
      boundaries.add(set.lo[i] as number);
      boundaries.add((set.hi[i] as number) + 1);
    }
  }
  const starts = Float64Array.from([...boundaries].sort((a, b) => a - b));
  const lists: number[][] = Array.from({ length: starts.length }, () => []);
  const general: number[] = [];
  sets.forEach((set, position) => {
    if (set === null) {
      general.push(position);
      return;
    }
    const spans: [number, number][] = [];
    let covered = 0;
    for (let i = 0; i < set.lo.length; i++) {
      const first = findInterval(starts, set.lo[i] as number);
      const last = findInterval(starts, set.hi[i] as number);
      spans.push([first, last]);
      covered += last - first + 1;
    }
    if (covered > MAX_KEYS_PER_RULE) {
      general.push(position);
      return;
    }
    for (const [first, last] of spans) for (let k = first; k <= last; k++) lists[k]?.push(position);
  });
  return { dimension, starts, buckets: lists.map((l) => Int32Array.from(l)), names: NO_NAMES, general: Int32Array.from(general) };
}

function buildNameIndex(dimension: NameDimension, matchers: readonly (GlobMatcher | null)[]): RuleIndex {
  const lists = new Map<string, number[]>();
  const general: number[] = [];
  matchers.forEach((m, position) => {
    const exactOnly = m !== null && !m.any && m.prefixes.length === 0 && m.suffixes.length === 0 && m.general.length === 0;
    if (!exactOnly || m.exact.size > MAX_KEYS_PER_RULE) {
      general.push(position);
      return;
    }
    for (const name of m.exact) {
      let list = lists.get(name);
      if (list === undefined) lists.set(name, (list = []));
      list.push(position);
    }
  });
  const names = new Map<string, Int32Array>();
  for (const [name, list] of lists) names.set(name, Int32Array.from(list));
  return { dimension, starts: Float64Array.of(0), buckets: [EMPTY], names, general: Int32Array.from(general) };
}

/** Expected candidates per lookup: the general list plus the mean keyed list. */
function costOf(index: RuleIndex): number {
  let total = 0;
  let keys = 0;
  const lists = index.names.size > 0 ? index.names.values() : index.buckets.values();
  for (const b of lists) {
    total += b.length;
    keys++;
  }
  return index.general.length + (keys === 0 ? 0 : total / keys);
}

export interface IndexInputs {
  readonly ranges: ReadonlyMap<RangeDimension, readonly (RangeSet | null)[]>;
  readonly names: ReadonlyMap<NameDimension, readonly (GlobMatcher | null)[]>;
}

/** Builds every candidate index and keeps the cheapest, or none when none clearly helps. */
export function buildRuleIndex(ruleCount: number, inputs: IndexInputs): RuleIndex {
  let best = buildNoIndex(ruleCount);
  if (ruleCount < MIN_RULES_TO_INDEX) return best;
  let bestCost = ruleCount;
  const candidates = [
    ...[...inputs.ranges].map(([d, sets]) => () => buildRangeIndex(d, sets)),
    ...[...inputs.names].map(([d, matchers]) => () => buildNameIndex(d, matchers)),
  ];
  for (const build of candidates) {
    const index = build();
    const cost = costOf(index);
    // Demand a clear win: merging two lists costs a little more per candidate than a plain scan.
    if (cost < bestCost * 0.75) {
      best = index;
      bestCost = cost;
    }
  }
  return best;
}

/** The interval holding `key` (the last start <= key). Keys are >= 0. */
export function findInterval(starts: Float64Array, key: number): number {
  let left = 0;
  let right = starts.length - 1;
  while (left < right) {
    const mid = (left + right + 1) >>> 1;
    if ((starts[mid] as number) <= key) left = mid;
    else right = mid - 1;
  }
  return left;
}

/** The candidate list for a numeric key; a negative key (unparseable address) only sees `general`. */
export function bucketForNumber(index: RuleIndex, key: number): Int32Array {
  if (key < 0) return EMPTY;
  return index.buckets[findInterval(index.starts, key)] ?? EMPTY;
}

/** The candidate list for a name key; null (no host name) only sees `general`. */
export function bucketForName(index: RuleIndex, key: string | null): Int32Array {
  if (key === null) return EMPTY;
  return index.names.get(key) ?? EMPTY;
}
