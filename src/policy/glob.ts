// Glob lists (`*` = any run of characters, `?` = exactly one) compiled once into a matcher.
//
// Exact names go to a Set, `prefix*` and `*suffix` to startsWith/endsWith; everything else is
// compiled into its segments between stars and matched greedily, each segment at its leftmost
// place: correct for `*`-separated segments, and linear for segments without `?` (V8's indexOf
// falls back to a linear-time Boyer-Moore when a search degenerates). A segment with `?` is
// matched by trying each position, O(segment × input). `globCost` (match-cost.ts) states these
// worst cases and validation bounds their sum over a policy. A RegExp would backtrack
// exponentially on patterns like `*a*a*a*a*b` against attacker-chosen 255-byte names, and the
// two-pointer walk this replaces cost 0.5 s for 1000 globs like `*aaaa…b*`.

export interface GlobMatcher {
  /** The list contained a bare `*`. */
  readonly any: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly suffixes: readonly string[];
  readonly general: readonly string[];
  /** `general`, compiled (same order). */
  readonly programs: readonly GlobProgram[];
  /** Patterns were lower-cased; callers must lower-case input too (host names). */
  readonly caseInsensitive: boolean;
  /**
   * Short lists (at most two exact names, one prefix) are also held in fields on the matcher:
   * comparing against them spares the Set's table and the array's backing store, which with
   * thousands of rules are cold cache lines on every decision (profiled: the USERID check was
   * half of a 10 000-rule decision). `smallExact` says the two fields hold every exact name.
   */
  readonly smallExact: boolean;
  readonly exact0: string | null;
  readonly exact1: string | null;
  readonly prefix0: string | null;
}

const STAR = 42;
const QUESTION = 63;

function countWildcards(p: string): { stars: number; questions: number } {
  let stars = 0;
  let questions = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === STAR) stars++;
    else if (c === QUESTION) questions++;
  }
  return { stars, questions };
}

/** Collapses runs of `*` (`a**b` = `a*b`), which keeps the fast-path classification honest. */
function collapseStars(p: string): string {
  return p.replace(/\*{2,}/g, '*');
}

export function compileGlobs(patterns: readonly string[], options: { caseInsensitive: boolean }): GlobMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  const general: string[] = [];
  let any = false;
  for (const raw of patterns) {
    const p = collapseStars(options.caseInsensitive ? raw.toLowerCase() : raw);
    const { stars, questions } = countWildcards(p);
    if (stars === 0 && questions === 0) exact.add(p);
    else if (p === '*') any = true;
    else if (questions === 0 && stars === 1 && p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else if (questions === 0 && stars === 1 && p.startsWith('*')) suffixes.push(p.slice(1));
    else general.push(p);
  }
  const smallExact = exact.size <= 2;
  const [exact0 = null, exact1 = null] = smallExact ? exact : [];
  return {
    any,
    exact,
    prefixes,
    suffixes,
    general,
    programs: general.map(compileGlob),
    caseInsensitive: options.caseInsensitive,
    smallExact,
    exact0,
    exact1,
    prefix0: prefixes.length === 1 ? (prefixes[0] as string) : null,
  };
}

/** A glob cut at its stars: `head*middle[0]*…*tail`; without a star, `head` is all of it. */
export interface GlobProgram {
  readonly starred: boolean;
  readonly head: Segment;
  readonly middle: readonly Segment[];
  readonly tail: Segment;
  readonly minLength: number;
}

interface Segment {
  readonly text: string;
  /** Holds a `?`: matched position by position instead of by indexOf. */
  readonly wild: boolean;
}

const segment = (text: string): Segment => ({ text, wild: text.includes('?') });

export function compileGlob(pattern: string): GlobProgram {
  const p = collapseStars(pattern);
  const parts = p.split('*');
  if (parts.length === 1)
    return { starred: false, head: segment(p), middle: [], tail: segment(''), minLength: p.length };
  const head = segment(parts[0] as string);
  const tail = segment(parts[parts.length - 1] as string);
  const middle = parts
    .slice(1, -1)
    .filter((t) => t !== '')
    .map(segment);
  const minLength = head.text.length + tail.text.length + middle.reduce((n, m) => n + m.text.length, 0);
  return { starred: true, head, middle, tail, minLength };
}

function segmentAt(seg: Segment, s: string, at: number): boolean {
  const t = seg.text;
  if (!seg.wild) return s.startsWith(t, at);
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c !== QUESTION && c !== s.charCodeAt(at + i)) return false;
  }
  return true;
}

/** The leftmost place in [from, limit) where `seg` fits whole, or -1. */
function findSegment(seg: Segment, s: string, from: number, limit: number): number {
  const last = limit - seg.text.length;
  if (!seg.wild) {
    const at = s.indexOf(seg.text, from);
    return at !== -1 && at <= last ? at : -1;
  }
  for (let at = from; at <= last; at++) if (segmentAt(seg, s, at)) return at;
  return -1;
}

/** Matches a compiled glob against `s` without allocating. */
export function matchGlob(g: GlobProgram, s: string): boolean {
  if (!g.starred) return s.length === g.head.text.length && segmentAt(g.head, s, 0);
  if (s.length < g.minLength) return false;
  if (!segmentAt(g.head, s, 0) || !segmentAt(g.tail, s, s.length - g.tail.text.length)) return false;
  // Between the anchored ends, each segment at its leftmost fit leaves the most room for the rest.
  let pos = g.head.text.length;
  const limit = s.length - g.tail.text.length;
  for (let i = 0; i < g.middle.length; i++) {
    const seg = g.middle[i] as Segment;
    const at = findSegment(seg, s, pos, limit);
    if (at === -1) return false;
    pos = at + seg.text.length;
  }
  return true;
}

/** Matches one glob (uncompiled) against `s`. */
export function globMatches(p: string, s: string): boolean {
  return matchGlob(compileGlob(p), s);
}

/** True when any pattern in the list matches `s` (already lower-cased for case-insensitive lists). */
export function matchGlobs(m: GlobMatcher, s: string): boolean {
  if (m.any) return true;
  if (m.smallExact ? s === m.exact0 || s === m.exact1 : m.exact.has(s)) return true;
  const { prefixes, suffixes } = m;
  if (m.prefix0 !== null) {
    if (s.startsWith(m.prefix0)) return true;
  } else {
    for (let i = 0; i < prefixes.length; i++) if (s.startsWith(prefixes[i] as string)) return true;
  }
  for (let i = 0; i < suffixes.length; i++) if (s.endsWith(suffixes[i] as string)) return true;
  const programs = m.programs;
  for (let i = 0; i < programs.length; i++) if (matchGlob(programs[i] as GlobProgram, s)) return true;
  return false;
}
