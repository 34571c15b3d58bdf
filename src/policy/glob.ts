// Glob lists (`*` = any run of characters, `?` = exactly one) compiled once into a matcher.
//
// Exact names go to a Set, `prefix*` and `*suffix` to startsWith/endsWith; everything else is
// matched by the classic two-pointer glob walk, which is O(pattern × input) in the worst case.
// A RegExp would backtrack exponentially on patterns like `*a*a*a*a*b` against attacker-chosen
// 255-byte names, so we do not build one.

export interface GlobMatcher {
  /** The list contained a bare `*`. */
  readonly any: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly suffixes: readonly string[];
  readonly general: readonly string[];
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
    any, exact, prefixes, suffixes, general, caseInsensitive: options.caseInsensitive,
    smallExact, exact0, exact1, prefix0: prefixes.length === 1 ? (prefixes[0] as string) : null,
  };
}

/** Matches one glob against `s` without allocating. */
export function globMatches(p: string, s: string): boolean {
  let pi = 0;
  let si = 0;
  let starAt = -1;
  let resumeAt = 0;
  const pn = p.length;
  const sn = s.length;
  while (si < sn) {
    const pc = pi < pn ? p.charCodeAt(pi) : -1;
    if (pc === STAR) {
      starAt = pi++;
      resumeAt = si;
    } else if (pc !== -1 && (pc === QUESTION || pc === s.charCodeAt(si))) {
      pi++;
      si++;
    } else if (starAt !== -1) {
      // Let the last `*` swallow one more character and retry from there.
      pi = starAt + 1;
      si = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pi < pn && p.charCodeAt(pi) === STAR) pi++;
  return pi === pn;
}

/** True when any pattern in the list matches `s` (already lower-cased for case-insensitive lists). */
export function matchGlobs(m: GlobMatcher, s: string): boolean {
  if (m.any) return true;
  if (m.smallExact ? s === m.exact0 || s === m.exact1 : m.exact.has(s)) return true;
  const { prefixes, suffixes, general } = m;
  if (m.prefix0 !== null) {
    if (s.startsWith(m.prefix0)) return true;
  } else {
    for (let i = 0; i < prefixes.length; i++) if (s.startsWith(prefixes[i] as string)) return true;
  }
  for (let i = 0; i < suffixes.length; i++) if (s.endsWith(suffixes[i] as string)) return true;
  for (let i = 0; i < general.length; i++) if (globMatches(general[i] as string, s)) return true;
  return false;
}
