// The worst-case matching work of a policy: the glob steps one decision may cost when every rule
// is tried against the longest input an attacker may send (a 255-byte USERID or host name).
// Validation bounds it per policy, so no author — through the operator, from any namespace —
// can make one decision stall a proxy's event loop (issue #12: 1000 globs like `*aaaa…b*` cost
// half a second a decision with the old matcher).
//
// Units are character comparisons, following glob.ts: an exact name is a hash lookup (its
// length), `prefix*`/`*suffix` a comparison (their length), a segment between stars a linear
// search (its length + the input's) unless it holds `?` (its length × the input's).
import { compileGlob } from './glob.ts';

/** The longest USERID or SOCKS4a name the codec accepts (SOCKS4 and 4a: 255 bytes). */
export const MAX_MATCH_INPUT = 255;

/**
 * The most matching work one policy may cost a decision, and all policies of one set (a file, a
 * snapshot) together. A unit costs 4-14 ns in the worst case (bench/policy-worst-case.ts: short
 * segments without `?` are the dearest per unit), so a decision costs at most about 3.5 ms per
 * policy and 14 ms per set on one busy core. 1000 globs like `*aaaa…b*` (250 characters) cost
 * 515 000: refused. A 10 000-rule policy of `svc-N-*` USERIDs costs about 200 000.
 */
export const MAX_MATCH_COST_PER_POLICY = 250_000;
export const MAX_MATCH_COST_PER_SET = 1_000_000;

/** What trying one pattern costs before any comparison (a call, a loop turn). */
const PER_PATTERN = 8;

export function globCost(pattern: string, input = MAX_MATCH_INPUT): number {
  const g = compileGlob(pattern);
  const search = (text: string, wild: boolean): number => (wild ? text.length * (input + 1) : text.length + input + 1);
  return (
    PER_PATTERN +
    g.head.text.length +
    g.tail.text.length +
    g.middle.reduce((n, seg) => n + search(seg.text, seg.wild), 0)
  );
}

/** Worst-case matching work of a list of globs (a rule's userids or hosts). */
export function globListCost(patterns: readonly unknown[]): number {
  let total = 0;
  for (const p of patterns) if (typeof p === 'string') total += globCost(p);
  return total;
}
