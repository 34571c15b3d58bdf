// Canonical SOCKS4a names: IDNA/UTS-46 look-alikes map to the ASCII name a Deny names, names
// spelled as addresses are those addresses (one documented syntax), and what is not a host name
// is refused. Host globs are validated and stored in the same form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { domainToASCII } from 'node:url';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { canonicalizeHost, canonicalizeHostGlob } from '../../src/policy/hostname.ts';
import { formatIssue, validatePolicy } from '../../src/policy/validate.ts';
import type { PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

const show = (raw: string): string => {
  const c = canonicalizeHost(raw);
  return c.kind === 'name' ? c.name : c.kind === 'address' ? `address ${c.text}` : 'invalid';
};

// The look-alikes of the issue: each is what the system resolver would ask DNS for as example.com.
const LOOK_ALIKES = [
  'ＥＸＡＭＰＬＥ.com', // fullwidth letters
  'exam\u00adple.com', // soft hyphen
  'exam\u200bple.com', // zero-width space
  '𝐞𝐱𝐚𝐦𝐩𝐥𝐞.com', // mathematical bold
  'ｅｘａｍｐｌｅ．ｃｏｍ', // fullwidth full stop too
  'Example.COM.', // case and the root dot
];

describe('canonical names', () => {
  it('maps every look-alike to the ASCII name', () => {
    for (const raw of LOOK_ALIKES) assert.equal(show(raw), 'example.com', JSON.stringify(raw));
    assert.equal(show('Bücher.example'), 'xn--bcher-kva.example');
    assert.equal(show('ß.de'), 'xn--zca.de', 'nontransitional: ß stays ß');
    assert.equal(show('_dmarc.example.com'), '_dmarc.example.com');
  });

  it('reads names spelled as addresses in the WHATWG / inet_aton syntax, before any DNS', () => {
    const table: [string, string][] = [
      ['2130706433', 'address 127.0.0.1'],
      ['0x7f.1', 'address 127.0.0.1'],
      ['127.1', 'address 127.0.0.1'],
      ['0177.0.0.1', 'address 127.0.0.1'],
      ['0x7F000001', 'address 127.0.0.1'],
      ['127.0.0.1.', 'address 127.0.0.1'],
      ['10.1', 'address 10.0.0.1'],
      ['1.16777215', 'address 1.255.255.255'],
      ['4294967295', 'address 255.255.255.255'],
      ['::ffff:10.0.0.1', 'address 10.0.0.1'],
      ['[::ffff:10.0.0.1]', 'address 10.0.0.1'],
      ['::FFFF:a00:1', 'address 10.0.0.1'],
      ['１２７.０.０.１', 'address 127.0.0.1'], // fullwidth digits map first
      ['4294967296', 'invalid'],
      ['1.16777216', 'invalid'],
      ['256.0.0.1', 'invalid'],
      ['1.2.3.4.5', 'invalid'],
      ['08.0.0.1', 'invalid'],
      ['0x1g.1', 'invalid'],
      ['foo.123', 'invalid'],
      ['::1', 'invalid'],
      ['[::]', 'invalid'],
      ['123.example', '123.example'],
      ['0x7f.example', '0x7f.example'],
    ];
    for (const [raw, want] of table) assert.equal(show(raw), want, raw);
  });

  it('agrees with the WHATWG URL host parser on every address spelling above', () => {
    for (const raw of [
      '2130706433',
      '0x7f.1',
      '127.1',
      '0177.0.0.1',
      '10.1',
      '1.16777215',
      '127.0.0.1.',
      '１２７.０.０.１',
    ]) {
      const c = canonicalizeHost(raw);
      assert.equal(c.kind === 'address' ? c.text : null, domainToASCII(raw).replace(/\.$/, ''), raw);
    }
  });

  it('takes the ASCII fast path only where the converter would agree', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/), (raw) => {
        const c = canonicalizeHost(raw);
        if (c.kind !== 'name') return;
        assert.equal(c.name, domainToASCII(raw).toLowerCase().replace(/\.$/, ''), raw);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses what is not a host name after conversion', () => {
    const bad = [
      'a b.com',
      'a\tb.com',
      'bell\u0007.com',
      'a..b',
      '.',
      '..',
      '-x.com',
      'x-.com',
      'a/b',
      'a%41.com',
      'ex\u202eample.com',
      `${'a'.repeat(64)}.com`,
      `${'a.'.repeat(126)}ab`,
      '\ufffd.com',
      '*.example.com',
      'a?b',
    ];
    for (const raw of bad) assert.equal(show(raw), 'invalid', JSON.stringify(raw));
    assert.equal(show(`${'a.'.repeat(125)}abc`), `${'a.'.repeat(125)}abc`, '253 characters is the limit, not over it');
  });
});

describe('canonical host globs', () => {
  it('stores globs in the form names are matched in', () => {
    const table: [string, string][] = [
      ['*.bücher.example', '*.xn--bcher-kva.example'],
      ['*.xn--bcher-kva.example', '*.xn--bcher-kva.example'],
      ['*.EXAMPLE.com.', '*.example.com'],
      ['ＷＷＷ.example.com', 'www.example.com'],
      ['db-?.int', 'db-?.int'],
      ['*', '*'],
    ];
    for (const [raw, want] of table) assert.deepEqual(canonicalizeHostGlob(raw), { ok: true, glob: want }, raw);
    for (const raw of ['b*ü.com', 'a..b', '.example.com', 'exa mple.com'])
      assert.equal(canonicalizeHostGlob(raw).ok, false, raw);
  });

  it('makes *.bücher.example and *.xn--bcher-kva.example the same rule, in the snapshot too', () => {
    for (const glob of ['*.bücher.example', '*.xn--bcher-kva.example']) {
      const set = compilePolicies([makePolicy('p', [{ name: 'books', action: 'Allow', to: { hosts: [glob] } }])]);
      const ctx = (host: string) => makeContext({ host: show(host), destIp: '93.184.216.34' });
      assert.equal(evaluate(set, ctx('www.BÜCHER.example')).action, 'allow', glob);
      assert.equal(evaluate(set, ctx('www.xn--bcher-kva.example')).action, 'allow', glob);
      assert.equal(evaluate(set, ctx('www.bucher.example')).action, 'deny', glob);
      assert.deepEqual(set.policies[0]?.spec.rules[0]?.to?.hosts, ['*.xn--bcher-kva.example']);
    }
  });

  it('refuses a glob that is not a host name pattern, naming the field', () => {
    const doc = makePolicy('p', [{ name: 'r', action: 'Deny', to: { hosts: ['b*ü.example'] } }]);
    assert.deepEqual(validatePolicy(doc).map(formatIssue), [
      `spec.rules[0].to.hosts[0]: "b*ü.example" is not a host name glob: label "b*ü" mixes wildcards with other characters than letters, digits, '-' and '_' (use letters, digits, '-', '.', '_', '*', '?' or an internationalised name)`,
    ]);
  });

  it('lets a Deny on the ASCII name refuse every look-alike once canonicalised', () => {
    const rules: PolicyRule[] = [
      { name: 'no-example', action: 'Deny', to: { hosts: ['example.com'] } },
      { name: 'web', action: 'Allow', to: { hosts: ['*'] } },
    ];
    const set = compilePolicies([makePolicy('p', rules)]);
    for (const raw of LOOK_ALIKES) {
      assert.equal(
        evaluate(set, makeContext({ host: show(raw), destIp: '93.184.216.34' })).rule?.name,
        'no-example',
        JSON.stringify(raw),
      );
    }
  });
});
