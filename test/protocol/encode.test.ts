import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyCode, REPLY_LENGTH } from '../../src/protocol/constants.ts';
import { encodeReply, encodeRequest } from '../../src/protocol/encode.ts';
import type { Socks4Request } from '../../src/protocol/parse-request.ts';

function hex(text: string): string {
  return text.replace(/\s+/g, '');
}
function ascii(text: string): string {
  return Buffer.from(text, 'latin1').toString('hex');
}

describe('encodeReply', () => {
  // [code, port, ip, hex out]
  const cases: Array<[ReplyCode, number | undefined, string | undefined, string]> = [
    [ReplyCode.Granted, undefined, undefined, '00 5a 0000 00000000'],
    [ReplyCode.Rejected, undefined, undefined, '00 5b 0000 00000000'],
    [ReplyCode.IdentUnreachable, undefined, undefined, '00 5c 0000 00000000'],
    [ReplyCode.IdentMismatch, undefined, undefined, '00 5d 0000 00000000'],
    [ReplyCode.Granted, 8080, '10.0.0.1', '00 5a 1f90 0a000001'],
    [ReplyCode.Granted, 65535, '255.255.255.255', '00 5a ffff ffffffff'],
    [ReplyCode.Granted, 1, '0.0.0.0', '00 5a 0001 00000000'],
    [ReplyCode.Rejected, 443, '192.168.1.20', '00 5b 01bb c0a80114'],
    [ReplyCode.Granted, 40000, '::ffff:10.1.2.3', '00 5a 9c40 0a010203'],
    [ReplyCode.Granted, 40000, '::FFFF:10.1.2.3', '00 5a 9c40 0a010203'],
  ];
  for (const [code, port, ip, out] of cases) {
    it(`${code} ${String(port)} ${String(ip)} → ${out}`, () => {
      const reply = encodeReply(code, port, ip);
      assert.equal(reply.length, REPLY_LENGTH);
      assert.equal(reply.toString('hex'), hex(out));
    });
  }

  it('returns a fresh buffer each time', () => {
    const first = encodeReply(ReplyCode.Granted);
    first[1] = 0;
    assert.equal(encodeReply(ReplyCode.Granted)[1], 90);
  });

  it('throws on what cannot be encoded', () => {
    for (const ip of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      '1.2.3.4 ',
      ' 1.2.3.4',
      '1..2.3',
      'a.b.c.d',
      '::1',
      '::ffff:',
      'example.com',
      '1.2.3.-4',
      '1111.2.3.4',
    ]) {
      assert.throws(() => encodeReply(ReplyCode.Granted, 80, ip), RangeError, JSON.stringify(ip));
    }
    for (const port of [-1, 65536, 1.5, Number.NaN]) {
      assert.throws(() => encodeReply(ReplyCode.Granted, port), RangeError, String(port));
    }
    for (const code of [0, 89, 94, 255]) {
      assert.throws(() => encodeReply(code as ReplyCode), RangeError, String(code));
    }
  });
});

describe('encodeRequest', () => {
  const base: Socks4Request = { command: 'connect', port: 80, ip: '1.2.3.4', userId: '', host: null };
  // [name, request, hex out]
  const cases: Array<[string, Socks4Request, string]> = [
    ['connect, empty USERID', base, '04 01 0050 01020304 00'],
    [
      'bind with UTF-8 USERID',
      { ...base, command: 'bind', port: 21, userId: 'zoë' },
      '04 02 0015 01020304 7a6fc3ab 00',
    ],
    ['0.0.0.0 stays plain', { ...base, ip: '0.0.0.0' }, '04 01 0050 00000000 00'],
    [
      '4a writes 0.0.0.1 when ip is a real address',
      { ...base, host: 'example.com' },
      `04 01 0050 00000001 00 ${ascii('example.com')} 00`,
    ],
    [
      '4a keeps a 0.0.0.x marker',
      { ...base, ip: '0.0.0.255', userId: 'bob', host: 'a.b' },
      `04 01 0050 000000ff ${ascii('bob')} 00 ${ascii('a.b')} 00`,
    ],
    // Limits are the parser's job; tools and tests must be able to build refused requests.
    ['port 0 is encodable', { ...base, port: 0 }, '04 01 0000 01020304 00'],
    ['empty 4a name is encodable', { ...base, host: '' }, '04 01 0050 00000001 00 00'],
  ];
  for (const [name, request, out] of cases) {
    it(name, () => {
      assert.equal(encodeRequest(request).toString('hex'), hex(out));
    });
  }

  it('says what could not be encoded', () => {
    assert.throws(() => encodeReply(ReplyCode.Granted, 80, '1-2-3-4'), /^RangeError: not an IPv4 address: "1-2-3-4"$/);
    assert.throws(() => encodeReply(ReplyCode.Granted, 70000), /^RangeError: not a port: 70000$/);
    assert.throws(() => encodeReply(89 as ReplyCode), /^RangeError: not a SOCKS4 reply code: 89$/);
    assert.throws(() => encodeRequest({ ...base, userId: 'a\0b' }), /^RangeError: userId contains a NUL/);
    assert.throws(() => encodeRequest({ ...base, host: 'a\0b' }), /^RangeError: host contains a NUL/);
    assert.throws(
      () => encodeRequest({ ...base, ip: '0.0.0.9' }),
      /^RangeError: DSTIP 0\.0\.0\.9 marks a SOCKS4a request but host is null$/,
    );
  });

  it('throws on what the wire cannot carry', () => {
    assert.throws(() => encodeRequest({ ...base, userId: 'a\0b' }), RangeError);
    assert.throws(() => encodeRequest({ ...base, host: 'a\0b' }), RangeError);
    assert.throws(() => encodeRequest({ ...base, ip: '0.0.0.9' }), RangeError); // 4a marker without a name
    assert.throws(() => encodeRequest({ ...base, ip: '1.2.3' }), RangeError);
    assert.throws(() => encodeRequest({ ...base, port: 70000 }), RangeError);
  });
});
