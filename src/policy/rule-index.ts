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
  None: 'none',
  Port: 'port',
  Source: 'source',
  Destination: 'destination',
  UserId: 'userid',
  Host: 'host',
} as const;
export type IndexDimension = (typeof IndexDimension)[keyof typeof IndexDimension];

export type RangeDimension =
  | typeof IndexDimension.Port
  | typeof IndexDimension.Source
  | typeof IndexDimension.Destination;
export type NameDimension = typeof IndexDimension.UserId | typeof IndexDimension.Host;

/**
 * Buckets are stored flat (compressed sparse rows): bucket k's rule positions, ascending, are
 * `bucketRules[bucketStarts[k] .. bucketStarts[k + 1])`. Two typed arrays instead of one small
 * array object per bucket: with 10 000 buckets, a lookup then touches two dense arrays rather
 * than a cold array object of its own (profiled at 10 000 rules).
 */
export interface RuleIndex {
  readonly dimension: IndexDimension;
  /** Numeric dimensions: interval starts, ascending; starts[0] = 0. Interval k is bucket k. */
  readonly starts: Float64Array;
  /** Name dimensions: the bucket of each exact name. */
  readonly names: ReadonlyMap<string, number>;
  /** bucketCount + 1 offsets into bucketRules. */
  readonly bucketStarts: Int32Array;
  readonly bucketRules: Int32Array;
  /** Rule positions that are candidates for every key, ascending. */
  readonly general: Int32Array;
}

/** Flattens per-bucket position lists (each ascending) into bucketStarts/bucketRules. */
function flattenBuckets(lists: readonly (readonly number[])[]): { bucketStarts: Int32Array; bucketRules: Int32Array } {
  const bucketStarts = new Int32Array(lists.length + 1);
  let total = 0;
  lists.forEach((list, k) => {
    bucketStarts[k] = total;
    total += list.length;
  });
  bucketStarts[lists.length] = total;
  const bucketRules = new Int32Array(total);
  lists.forEach((list, k) => bucketRules.set(list, bucketStarts[k] as number));
  return { bucketStarts, bucketRules };
}

/** A rule covering more intervals or names than this is cheaper to keep in `general`. */
const MAX_KEYS_PER_RULE = 32;
/** Below this many rules a linear scan beats any index. */
const MIN_RULES_TO_INDEX = 64;

const NO_NAMES: ReadonlyMap<string, number> = new Map();
/** No bucket: the key only sees `general`. */
export const NO_BUCKET = -1;

export function buildNoIndex(ruleCount: number): RuleIndex {
  return {
    dimension: IndexDimension.None,
    starts: Float64Array.of(0),
    names: NO_NAMES,
    ...flattenBuckets([[]]),
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
  return { dimension, starts, names: NO_NAMES, ...flattenBuckets(lists), general: Int32Array.from(general) };
}

function buildNameIndex(dimension: NameDimension, matchers: readonly (GlobMatcher | null)[]): RuleIndex {
  const lists = new Map<string, number[]>();
  const general: number[] = [];
  matchers.forEach((m, position) => {
    const exactOnly =
      m !== null && !m.any && m.prefixes.length === 0 && m.suffixes.length === 0 && m.general.length === 0;
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
  const names = new Map<string, number>();
  for (const name of lists.keys()) names.set(name, names.size);
  return {
    dimension,
    starts: Float64Array.of(0),
    names,
    ...flattenBuckets([...lists.values()]),
    general: Int32Array.from(general),
  };
}

/** Expected candidates per lookup: the general list plus the mean keyed list. */
function costOf(index: RuleIndex): number {
  const keys = index.bucketStarts.length - 1;
  return index.general.length + (keys === 0 ? 0 : index.bucketRules.length / keys);
}

export interface IndexInputs {
  readonly ranges: ReadonlyMap<RangeDimension, readonly (RangeSet | null)[]>;
  readonly names: ReadonlyMap<NameDimension, readonly (GlobMatcher | null)[]>;
}

/**
 * Builds every candidate index and keeps the cheapest, or none when none clearly helps, pausing
 * (yield) after each candidate index (see compileInSteps).
 */
export function* buildRuleIndexInSteps(ruleCount: number, inputs: IndexInputs): Generator<void, RuleIndex, void> {
  let best = buildNoIndex(ruleCount);
  if (ruleCount < MIN_RULES_TO_INDEX) return best;
  let bestCost = ruleCount;
  const candidates = [
    ...[...inputs.ranges].map(
      ([d, sets]) =>
        () =>
          buildRangeIndex(d, sets),
    ),
    ...[...inputs.names].map(
      ([d, matchers]) =>
        () =>
          buildNameIndex(d, matchers),
    ),
  ];
  for (const build of candidates) {
    yield;
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

/** The bucket for a numeric key; a negative key (unparseable address) has none (NO_BUCKET). */
export function bucketForNumber(index: RuleIndex, key: number): number {
  return key < 0 ? NO_BUCKET : findInterval(index.starts, key);
}

/** The bucket for a name key; null (no host name) or an unlisted name has none (NO_BUCKET). */
export function bucketForName(index: RuleIndex, key: string | null): number {
  if (key === null) return NO_BUCKET;
  return index.names.get(key) ?? NO_BUCKET;
}
