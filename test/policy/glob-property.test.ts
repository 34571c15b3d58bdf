// The glob matcher (segments between stars, leftmost fit, fast paths for exact names, `prefix*`
// and `*suffix`) against an independent reference: the textbook dynamic-programming glob match.
// Small alphabets make stars, `?`, repeats and overlaps meet often. Written for the mutants
// `make mutate` left alive in src/policy/glob.ts (middle segments, minimum length, the fit window).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileGlobs, globMatches, matchGlobs } from '../../src/policy/glob.ts';

/** `*` any run (empty too), `?` exactly one character, anything else itself. */
function reference(pattern: string, s: string): boolean {
  // can[i][j]: pattern[0..i) matches s[0..j).
  const can = Array.from({ length: pattern.length + 1 }, () => new Array<boolean>(s.length + 1).fill(false));
  can[0]![0] = true;
  for (let i = 1; i <= pattern.length; i++) {
    const c = pattern[i - 1];
    for (let j = 0; j <= s.length; j++) {
      if (c === '*') can[i]![j] = can[i - 1]![j]! || (j > 0 && can[i]![j - 1]!);
      else can[i]![j] = j > 0 && can[i - 1]![j - 1]! && (c === '?' || c === s[j - 1]);
    }
  }
  return can[pattern.length]![s.length]!;
}

const pattern = fc.stringMatching(/^[ab*?]{0,8}$/);
const input = fc.stringMatching(/^[ab]{0,10}$/);

describe('glob matching agrees with the reference', () => {
  it('one pattern', () => {
    fc.assert(
      fc.property(pattern, input, (p, s) => globMatches(p, s) === reference(p, s)),
      { numRuns: 3000 },
    );
  });

  it('a list (exact names, prefixes, suffixes and general patterns together)', () => {
    fc.assert(
      fc.property(
        fc.array(pattern, { minLength: 1, maxLength: 4 }),
        input,
        (ps, s) => matchGlobs(compileGlobs(ps, { caseInsensitive: false }), s) === ps.some((p) => reference(p, s)),
      ),
      { numRuns: 3000 },
    );
  });

  it('cases the random search may take long to find', () => {
    const table: Array<[string, string, boolean]> = [
      ['a*b*a', 'abba', true],
      ['a*b*a', 'aba', true],
      ['a*b*a', 'ab', false],
      ['*ab*ba*', 'aba', false],
      ['*ab*ba*', 'abba', true],
      ['a?*?a', 'aba', false],
      ['a?*?a', 'abba', true],
      ['*a?b*', 'aab', true],
      ['*?*', '', false],
      ['?', '', false],
      ['**', '', true],
      ['a*', 'b', false],
      ['*a', 'ab', false],
      ['a*b', 'a', false],
      ['*b*', 'aaa', false],
      ['a*?', 'a', false],
      ['*aa*aa', 'aaa', false],
    ];
    for (const [p, s, want] of table) {
      assert.equal(reference(p, s), want, `reference ${p} ${s}`);
      assert.equal(globMatches(p, s), want, `${p} ${s}`);
      assert.equal(matchGlobs(compileGlobs([p], { caseInsensitive: false }), s), want, `list [${p}] ${s}`);
    }
    // Two prefixes (no single-prefix field), two suffixes, three exact names (the Set).
    const list = compileGlobs(['ab*', 'ba*', '*aa', '*bb', 'a', 'b', 'abab'], { caseInsensitive: false });
    const got = ['abx', 'bax', 'xaa', 'xbb', 'a', 'b', 'abab', 'x', 'xab', 'aax'].map((s) => matchGlobs(list, s));
    assert.deepEqual(got, [true, true, true, true, true, true, true, false, false, false]);
    // Exact names only: the third of three (past the two-name fast path) matches by itself.
    const names = compileGlobs(['a', 'b', 'abab'], { caseInsensitive: false });
    assert.deepEqual(
      ['a', 'b', 'abab', 'ab'].map((s) => matchGlobs(names, s)),
      [true, true, true, false],
    );
    // A loop one past its list would test startsWith(undefined), i.e. the text "undefined".
    assert.equal(matchGlobs(list, 'undefined'), false);
    assert.equal(matchGlobs(list, 'xundefined'), false);
  });
});
