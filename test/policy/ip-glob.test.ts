import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileGlobs, globMatches, matchGlobs } from '../../src/policy/glob.ts';
import { formatIpv4, NOT_IPV4, parseCidr, parseIpv4 } from '../../src/policy/ip.ts';
import { buildRangeSet, rangeSetHas } from '../../src/policy/ranges.ts';

describe('parseIpv4', () => {
  it('reads dotted quads and IPv4-mapped IPv6 in any spelling', () => {
    const table: [string, number][] = [
      ['0.0.0.0', 0],
      ['255.255.255.255', 0xffffffff],
      ['10.1.2.3', 0x0a010203],
      ['::ffff:10.1.2.3', 0x0a010203],
      ['::FFFF:10.1.2.3', 0x0a010203],
      ['::ffff:a01:203', 0x0a010203],
      ['0:0:0:0:0:ffff:10.1.2.3', 0x0a010203],
      ['0000:0000:0000:0000:0000:FFFF:0A01:0203', 0x0a010203],
    ];
    for (const [text, value] of table) assert.equal(parseIpv4(text), value, text);
  });

  it('refuses everything else', () => {
    for (const text of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      '1.2.3.4 ',
      ' 1.2.3.4',
      '1..2.3',
      '::1',
      '2001:db8::1',
      '::ffff:1.2.3',
      '::fffe:1.2.3.4',
      '::ffff:1.2.3.4%eth0',
      'localhost',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      assert.equal(parseIpv4(text), NOT_IPV4, text);
    }
  });

  it('round-trips through formatIpv4', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
  });
});

describe('parseCidr', () => {
  it('normalises host bits, bare addresses and mapped blocks', () => {
    const table: [string, string, number, number][] = [
      ['10.1.2.3/8', '10.0.0.0/8', 0x0a000000, 0x0affffff],
      ['0.0.0.0/0', '0.0.0.0/0', 0, 0xffffffff],
      ['192.168.1.1', '192.168.1.1/32', 0xc0a80101, 0xc0a80101],
      ['::ffff:192.168.0.0/112', '192.168.0.0/16', 0xc0a80000, 0xc0a8ffff],
      ['::ffff:127.0.0.1/128', '127.0.0.1/32', 0x7f000001, 0x7f000001],
    ];
    for (const [text, canonical, start, end] of table) {
      assert.deepEqual(parseCidr(text), { text: canonical, start, end, prefix: Number(canonical.split('/')[1]) }, text);
    }
  });

  it('refuses garbage', () => {
    for (const text of [
      '10.0.0.0/33',
      '10.0.0.0/-1',
      '10.0.0.0/',
      '10.0.0.0/08',
      '10.0.0/8',
      '::/0',
      '::ffff:10.0.0.0/95',
      '::ffff:10.0.0.0/129',
      'a/8',
    ]) {
      assert.equal(parseCidr(text), null, text);
    }
  });
});

describe('range sets', () => {
  it('merge overlapping and adjacent ranges', () => {
    const set = buildRangeSet([
      { lo: 10, hi: 20 },
      { lo: 21, hi: 30 },
      { lo: 15, hi: 16 },
      { lo: 40, hi: 40 },
      { lo: 0, hi: 0 },
    ]);
    assert.deepEqual([...set.lo], [0, 10, 40]);
    assert.deepEqual([...set.hi], [0, 30, 40]);
  });

  it('agree with a plain scan', () => {
    const range = fc
      .tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 10 }))
      .map(([lo, len]) => ({ lo, hi: lo + len }));
    fc.assert(
      fc.property(fc.array(range), fc.integer({ min: -1, max: 120 }), (ranges, x) => {
        assert.equal(
          rangeSetHas(buildRangeSet(ranges), x),
          ranges.some((r) => x >= r.lo && x <= r.hi),
        );
      }),
    );
  });
});

describe('globs', () => {
  it('match * and ? like a shell', () => {
    const table: [string, string, boolean][] = [
      ['*', '', true],
      ['a*', 'a', true],
      ['*a', 'ba', true],
      ['a*b', 'ab', true],
      ['a*b', 'axxb', true],
      ['a*b', 'axxbc', false],
      ['a?c', 'abc', true],
      ['a?c', 'ac', false],
      ['*.x.*', 'a.x.b', true],
      ['*a*a*a*b', 'a'.repeat(255), false],
      ['**', 'z', true],
    ];
    for (const [pattern, input, expected] of table) {
      assert.equal(globMatches(pattern, input), expected, `${pattern} ~ ${input}`);
      assert.equal(
        matchGlobs(compileGlobs([pattern], { caseInsensitive: false }), input),
        expected,
        `compiled ${pattern} ~ ${input}`,
      );
    }
  });

  it('sort patterns into fast paths once', () => {
    const m = compileGlobs(['alice', 'svc-*', '*.Example.com', 'b?b', 'a**'], { caseInsensitive: true });
    assert.deepEqual(
      { exact: [...m.exact], prefixes: m.prefixes, suffixes: m.suffixes, general: m.general, any: m.any },
      { exact: ['alice'], prefixes: ['svc-', 'a'], suffixes: ['.example.com'], general: ['b?b'], any: false },
    );
  });

  it('agree with an equivalent regular expression', () => {
    const pattern = fc.stringMatching(/^[ab*?]{0,8}$/);
    const input = fc.stringMatching(/^[ab]{0,10}$/);
    fc.assert(
      fc.property(pattern, input, (p, s) => {
        const re = new RegExp(`^${p.replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
        assert.equal(matchGlobs(compileGlobs([p], { caseInsensitive: false }), s), re.test(s));
      }),
    );
  });
});
