// Address, CIDR and port-spec parsing, table-driven: the spellings of IPv4 and of IPv4-mapped IPv6
// that a socket layer, a resolver or a policy author may hand the policy engine. Written for the
// mutants `make mutate` found surviving in src/policy/ip.ts and ranges.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrWithin, NOT_IPV4, parseCidr, parseIpv4 } from '../../src/policy/ip.ts';
import { buildRangeSet, parsePortSpec, rangeSetHas } from '../../src/policy/ranges.ts';

const ip = (a: number, b: number, c: number, d: number): number => ((a * 256 + b) * 256 + c) * 256 + d;

describe('parseIpv4', () => {
  const cases: Array<[string, number]> = [
    ['1.2.3.4', ip(1, 2, 3, 4)],
    ['255.255.255.255', ip(255, 255, 255, 255)],
    ['::ffff:1.2.3.4', ip(1, 2, 3, 4)],
    ['::FFFF:1.2.3.4', ip(1, 2, 3, 4)],
    ['::ffff:7f00:1', ip(127, 0, 0, 1)],
    ['0:0:0:0:0:ffff:7f00:1', ip(127, 0, 0, 1)],
    ['0:0:0:0:0:ffff:1.2.3.4', ip(1, 2, 3, 4)],
    ['0::ffff:1.2.3.4', ip(1, 2, 3, 4)],
    ['::0:ffff:a0b:c0d', ip(10, 11, 12, 13)],
    ['::0:0:0:0:ffff:7f00:1', ip(127, 0, 0, 1)], // '::' standing for a single zero group
    // Not IPv4.
    ['', NOT_IPV4],
    ['1.2.3', NOT_IPV4],
    ['1.2.3.', NOT_IPV4],
    ['1.2.3.4.', NOT_IPV4],
    ['1.2.3.4.5', NOT_IPV4],
    ['1..2.3', NOT_IPV4],
    ['1.2.3.04', NOT_IPV4],
    ['1.2.3.256', NOT_IPV4],
    ['1.2.3.1000', NOT_IPV4],
    ['1a.2.3.4', NOT_IPV4],
    ['1.2.3.4a', NOT_IPV4],
    ['1:2.3.4', NOT_IPV4],
    ['::1.2.3.4', NOT_IPV4], // IPv4-compatible, not mapped
    ['::fffe:1.2.3.4', NOT_IPV4],
    ['1::ffff:1.2.3.4', NOT_IPV4],
    ['0:0:0:0:1:ffff:7f00:1', NOT_IPV4],
    ['::ffff:1.2.3', NOT_IPV4],
    ['::ffff:01.2.3.4', NOT_IPV4],
    ['::ffff:1.2.3.4.5', NOT_IPV4],
    ['::ffff::1', NOT_IPV4],
    [':::ffff:1.2.3.4', NOT_IPV4],
    ['::ffff:7f00:1::', NOT_IPV4],
    ['::ffff:7f00:1%eth0', NOT_IPV4],
    ['::ffff:12345:1', NOT_IPV4],
    ['::ffff:7f00:g', NOT_IPV4],
    ['::ffff:x7f00:1', NOT_IPV4],
    ['::ffff:7f00x:1', NOT_IPV4],
    ['0:0:0:0:0:ffff:7f00', NOT_IPV4],
    ['0:0:0:0:0:0:ffff:7f00:1', NOT_IPV4],
    ['0:0:0:0:0:0:ffff:1.2.3.4', NOT_IPV4],
    ['0:0:0:0:0:ffff:7f00:1::', NOT_IPV4],
    ['0:0:0:0:0:0:0:0:ffff::', NOT_IPV4],
    ['x::ffff:1.2.3.4', NOT_IPV4],
    ['::ffff:' + '0'.repeat(40) + ':1', NOT_IPV4],
    ['0000:0000:0000:0000:0000:ffff:001.002.003.004', NOT_IPV4],
    ['ffff:1.2.3.4', NOT_IPV4],
    ['::ffff', NOT_IPV4],
    // Eight groups without '::', one of them not hex: refused, not a TypeError from the expansion.
    ['0:0:0:0:0:ffff:7f00:g', NOT_IPV4],
    ['0:0:0:0:0:ffff:g:1.2.3.4', NOT_IPV4],
    ['localhost', NOT_IPV4],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => assert.equal(parseIpv4(text), expected));
  }
});

describe('parseCidr', () => {
  const cases: Array<[string, string | null]> = [
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['10.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.1', '10.0.0.1/32'],
    ['10.0.0.0/32', '10.0.0.0/32'],
    ['::ffff:10.0.0.0/96', '0.0.0.0/0'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::ffff:10.0.0.1/128', '10.0.0.1/32'],
    ['::ffff:10.0.0.0/95', null],
    ['::ffff:10.0.0.0/129', null],
    ['10.0.0.0/33', null],
    ['10.0.0.0/08', null],
    ['10.0.0.0/', null],
    ['10.0.0/8', null],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => assert.equal(parseCidr(text)?.text ?? null, expected));
  }

  it('cidrWithin: inside, equal, overhanging either end, disjoint', () => {
    const c = (text: string) => parseCidr(text)!;
    assert.equal(cidrWithin(c('10.1.0.0/16'), c('10.0.0.0/8')), true);
    assert.equal(cidrWithin(c('10.0.0.0/8'), c('10.0.0.0/8')), true);
    assert.equal(cidrWithin(c('11.0.0.0/8'), c('10.0.0.0/7')), true);
    assert.equal(cidrWithin(c('10.0.0.0/7'), c('11.0.0.0/8')), false);
    assert.equal(cidrWithin(c('10.0.0.0/8'), c('10.0.0.0/9')), false);
    assert.equal(cidrWithin(c('10.0.0.0/8'), c('10.128.0.0/9')), false);
    assert.equal(cidrWithin(c('12.0.0.0/8'), c('10.0.0.0/8')), false);
  });
});

describe('parsePortSpec and range sets', () => {
  const cases: Array<[string, ReturnType<typeof parsePortSpec>]> = [
    ['443', { ok: true, range: { lo: 443, hi: 443 } }],
    ['1-65535', { ok: true, range: { lo: 1, hi: 65535 } }],
    ['0', { ok: false, message: '"0" is not a port' }],
    ['65536', { ok: false, message: '"65536" is not a port' }],
    ['0-5', { ok: false, message: '"0-5" is not a port range: ports are 1-65535' }],
    ['1-65536', { ok: false, message: '"1-65536" is not a port range: ports are 1-65535' }],
    ['9-8', { ok: false, message: '"9-8" is not a port range: 9 is greater than 8' }],
    ['x', { ok: false, message: '"x" is not a port or port range (like "443" or "8000-8999")' }],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => assert.deepEqual(parsePortSpec(text), expected));
  }

  it('merges overlapping and adjacent ranges and finds their edges', () => {
    const set = buildRangeSet([
      { lo: 20, hi: 30 },
      { lo: 5, hi: 9 },
      { lo: 10, hi: 12 },
      { lo: 25, hi: 40 },
      { lo: 50, hi: 50 },
    ]);
    assert.deepEqual([...set.lo], [5, 20, 50]);
    assert.deepEqual([...set.hi], [12, 40, 50]);
    const members = [4, 5, 12, 13, 19, 20, 40, 41, 49, 50, 51].filter((x) => rangeSetHas(set, x));
    assert.deepEqual(members, [5, 12, 20, 40, 50]);
    assert.equal(rangeSetHas(set, -1), false);
    assert.equal(rangeSetHas(buildRangeSet([]), 0), false);
  });
});
