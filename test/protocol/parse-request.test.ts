import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeRequest } from '../../src/protocol/encode.ts';
import { parseRequest } from '../../src/protocol/parse-request.ts';
import type { ParseResult, RequestInvalidReason, Socks4Request } from '../../src/protocol/parse-request.ts';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}
function ascii(text: string): string {
  return Buffer.from(text, 'latin1').toString('hex');
}
const INCOMPLETE = { kind: 'incomplete' } as const;
function ok(request: Socks4Request, bytesRead: number): ParseResult {
  return { kind: 'ok', request, bytesRead };
}
function invalid(reason: RequestInvalidReason): ParseResult {
  return { kind: 'invalid', reason };
}
function req(partial: Partial<Socks4Request>): Socks4Request {
  return { command: 'connect', port: 80, ip: '1.2.3.4', userId: '', host: null, ...partial };
}

const USERID_255 = 'u'.repeat(255);
const USERID_256 = 'u'.repeat(256);
const HOST_255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`; // 255 bytes
const HOST_256 = HOST_255 + 'e';

// [name, hex in, expected]
const cases: Array<[string, string, ParseResult]> = [
  // Complete SOCKS4.
  ['connect, empty USERID', '04 01 0050 01020304 00', ok(req({}), 9)],
  [
    'bind with USERID',
    `04 02 1f90 0a000001 ${ascii('alice')} 00`,
    ok(req({ command: 'bind', port: 8080, ip: '10.0.0.1', userId: 'alice' }), 14),
  ],
  ['port 65535, address 255.255.255.255', '04 01 ffff ffffffff 00', ok(req({ port: 65535, ip: '255.255.255.255' }), 9)],
  ['USERID is UTF-8', '04 01 0050 01020304 7a6fc3ab 00', ok(req({ userId: 'zoë' }), 13)],
  ['USERID of 255 bytes', `04 01 0050 01020304 ${ascii(USERID_255)} 00`, ok(req({ userId: USERID_255 }), 264)],
  ['0.0.0.0 is a plain address, not 4a', '04 01 0050 00000000 00', ok(req({ ip: '0.0.0.0' }), 9)],
  ['0.0.1.0 is not 4a', '04 01 0050 00000100 00', ok(req({ ip: '0.0.1.0' }), 9)],
  ['1.0.0.1 is not 4a', '04 01 0050 01000001 00', ok(req({ ip: '1.0.0.1' }), 9)],
  ['0.1.0.1 is not 4a', '04 01 0050 00010001 00', ok(req({ ip: '0.1.0.1' }), 9)],
  ['0.0.1.1 is not 4a', '04 01 0050 00000101 00', ok(req({ ip: '0.0.1.1' }), 9)],
  // Complete SOCKS4a.
  [
    '4a connect 0.0.0.1',
    `04 01 01bb 00000001 00 ${ascii('example.com')} 00`,
    ok(req({ port: 443, ip: '0.0.0.1', host: 'example.com' }), 21),
  ],
  [
    '4a 0.0.0.255 with USERID',
    `04 01 01bb 000000ff ${ascii('bob')} 00 ${ascii('a.b')} 00`,
    ok(req({ port: 443, ip: '0.0.0.255', userId: 'bob', host: 'a.b' }), 16),
  ],
  [
    '4a bind',
    `04 02 0015 00000007 00 ${ascii('ftp.example')} 00`,
    ok(req({ command: 'bind', port: 21, ip: '0.0.0.7', host: 'ftp.example' }), 21),
  ],
  [
    '4a host of 255 bytes',
    `04 01 0050 00000001 00 ${ascii(HOST_255)} 00`,
    ok(req({ ip: '0.0.0.1', host: HOST_255 }), 265),
  ],
  ['4a host is UTF-8', '04 01 0050 00000001 00 c3a92e6672 00', ok(req({ ip: '0.0.0.1', host: 'é.fr' }), 15)],
  // Malformed, decided as soon as the deciding byte arrives.
  ['VN 5', '05', invalid('BadVersion')],
  ['VN 0', '00', invalid('BadVersion')],
  ['VN 5, full request', '05 01 0050 01020304 00', invalid('BadVersion')],
  ['HTTP is not SOCKS4', ascii('GET / HTTP/1.1\r\n'), invalid('BadVersion')],
  ['CD 0', '04 00', invalid('BadCommand')],
  ['CD 3', '04 03 0050 01020304 00', invalid('BadCommand')],
  ['CD 255', '04 ff', invalid('BadCommand')],
  ['DSTPORT 0', '04 01 0000', invalid('ZeroPort')],
  ['DSTPORT 0, full request', '04 02 0000 01020304 00', invalid('ZeroPort')],
  ['USERID 256 bytes, no NUL yet', `04 01 0050 01020304 ${ascii(USERID_256)}`, invalid('UserIdTooLong')],
  ['USERID 256 bytes with NUL', `04 01 0050 01020304 ${ascii(USERID_256)} 00`, invalid('UserIdTooLong')],
  ['4a USERID 256 bytes', `04 01 0050 00000001 ${ascii(USERID_256)} 00 ${ascii('a.b')} 00`, invalid('UserIdTooLong')],
  ['4a empty host', '04 01 0050 00000001 00 00', invalid('EmptyHostname')],
  ['4a host 256 bytes, no NUL yet', `04 01 0050 00000001 00 ${ascii(HOST_256)}`, invalid('HostnameTooLong')],
  ['4a host 256 bytes with NUL', `04 01 0050 00000001 00 ${ascii(HOST_256)} 00`, invalid('HostnameTooLong')],
  // Short of complete.
  ['nothing', '', INCOMPLETE],
  ['VN only', '04', INCOMPLETE],
  ['half a port', '04 01 00', INCOMPLETE],
  ['three bytes of DSTIP', '04 01 0050 010203', INCOMPLETE],
  ['fixed part only', '04 01 0050 01020304', INCOMPLETE],
  ['USERID without NUL', `04 01 0050 01020304 ${ascii('alice')}`, INCOMPLETE],
  ['USERID of 255 bytes without NUL', `04 01 0050 01020304 ${ascii(USERID_255)}`, INCOMPLETE],
  ['4a, no host bytes yet', '04 01 0050 00000001 00', INCOMPLETE],
  ['4a host without NUL', `04 01 0050 00000001 00 ${ascii('example.com')}`, INCOMPLETE],
  ['4a host of 255 bytes without NUL', `04 01 0050 00000001 00 ${ascii(HOST_255)}`, INCOMPLETE],
];

describe('parseRequest', () => {
  for (const [name, input, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parseRequest(hex(input)), expected);
    });
  }

  it('reads a request arriving one byte at a time', () => {
    for (const [, input, expected] of cases) {
      if (expected.kind !== 'ok') continue;
      const bytes = hex(input);
      for (let i = 0; i < bytes.length; i++) {
        assert.deepEqual(parseRequest(bytes.subarray(0, i)), INCOMPLETE, `${input} cut at ${i}`);
      }
      assert.deepEqual(parseRequest(bytes), expected);
    }
  });

  it('refuses a malformed request at the first byte that decides it, and keeps refusing', () => {
    const decidedAt: Array<[string, number, RequestInvalidReason]> = [
      ['05 01 0050 01020304 00', 1, 'BadVersion'],
      ['04 09 0050 01020304 00', 2, 'BadCommand'],
      ['04 01 0000 01020304 00', 4, 'ZeroPort'],
      [`04 01 0050 01020304 ${ascii(USERID_256)} 00`, 8 + 256, 'UserIdTooLong'],
      ['04 01 0050 00000001 00 00', 10, 'EmptyHostname'],
      [`04 01 0050 00000001 61 00 ${ascii(HOST_256)} 00`, 10 + 256, 'HostnameTooLong'],
    ];
    for (const [input, at, reason] of decidedAt) {
      const bytes = hex(input);
      for (let i = 0; i <= bytes.length; i++) {
        const expected = i < at ? INCOMPLETE : invalid(reason);
        assert.deepEqual(parseRequest(bytes.subarray(0, i)), expected, `${input} cut at ${i}`);
      }
    }
  });

  it('points bytesRead at client data sent in the same packet', () => {
    const payload = Buffer.from('GET / HTTP/1.1\r\n\r\n\0\0', 'latin1');
    for (const head of [
      `04 01 0050 01020304 ${ascii('alice')} 00`,
      `04 01 0050 00000001 00 ${ascii('example.com')} 00`,
    ]) {
      const request = hex(head);
      const result = parseRequest(Buffer.concat([request, payload]));
      assert.equal(result.kind, 'ok');
      assert.equal(result.kind === 'ok' && result.bytesRead, request.length);
      assert.deepEqual(result, parseRequest(request));
    }
  });

  it('parses a request at a non-zero offset of a pooled buffer', () => {
    const pool = Buffer.concat([hex('ffffffff'), hex('04 01 0050 01020304 61 00')]);
    assert.deepEqual(parseRequest(pool.subarray(4)), ok(req({ userId: 'a' }), 10));
  });
});

describe('parseRequest properties', () => {
  // Random bytes, and random bytes behind a plausible VN/CD/port so the fuzzer reaches USERID and 4a.
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc
      .tuple(
        fc.constantFrom(1, 2),
        fc.integer({ min: 1, max: 0xffff }),
        fc.boolean(),
        fc.uint8Array({ maxLength: 600 }),
      )
      .map(([cd, port, is4a, rest]) => {
        const head = Buffer.from([4, cd, port >> 8, port & 0xff, 0, 0, 0, is4a ? 1 : 0]);
        return new Uint8Array(Buffer.concat([head, rest]));
      }),
  );

  it('never throws, and always returns one of the three kinds with bytesRead in range', () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        const buf = Buffer.from(bytes);
        const result = parseRequest(buf);
        assert.ok(['incomplete', 'ok', 'invalid'].includes(result.kind));
        if (result.kind === 'ok') {
          assert.ok(result.bytesRead > 8 && result.bytesRead <= buf.length);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('once a prefix decides, every longer input decides the same way', () => {
    fc.assert(
      fc.property(anyBytes, fc.integer({ min: 0, max: 600 }), (bytes, cut) => {
        const buf = Buffer.from(bytes);
        const early = parseRequest(buf.subarray(0, Math.min(cut, buf.length)));
        if (early.kind !== 'incomplete') assert.deepEqual(parseRequest(buf), early);
      }),
      { numRuns: 1000 },
    );
  });

  const noNul = (s: string) => !s.includes('\0');
  const fits = (s: string) => Buffer.byteLength(s, 'utf8') <= 255;
  const text = (minLength: number) =>
    fc
      .oneof(
        fc.string({ unit: 'binary', minLength, maxLength: 80 }),
        fc.string({ unit: 'binary-ascii', minLength, maxLength: 255 }),
      )
      .filter((s) => noNul(s) && fits(s));
  const plainIp = fc
    .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
    .filter(([a, b, c, d]) => !(a === 0 && b === 0 && c === 0 && d !== 0))
    .map((octets) => octets.join('.'));
  const request: fc.Arbitrary<Socks4Request> = fc.oneof(
    fc.record(
      {
        command: fc.constantFrom('connect' as const, 'bind' as const),
        port: fc.integer({ min: 1, max: 0xffff }),
        ip: plainIp,
        userId: text(0),
        host: fc.constant(null),
      },
      { noNullPrototype: true },
    ),
    fc.record(
      {
        command: fc.constantFrom('connect' as const, 'bind' as const),
        port: fc.integer({ min: 1, max: 0xffff }),
        ip: fc.integer({ min: 1, max: 255 }).map((x) => `0.0.0.${x}`),
        userId: text(0),
        host: text(1),
      },
      { noNullPrototype: true },
    ),
  );

  it('parse(encodeRequest(r)) = r, reading exactly the encoded bytes', () => {
    fc.assert(
      fc.property(request, fc.uint8Array({ maxLength: 16 }), (r, trailing) => {
        const encoded = encodeRequest(r);
        assert.deepEqual(parseRequest(encoded), { kind: 'ok', request: r, bytesRead: encoded.length });
        const withData = Buffer.concat([encoded, trailing]);
        assert.deepEqual(parseRequest(withData), { kind: 'ok', request: r, bytesRead: encoded.length });
      }),
      { numRuns: 500 },
    );
  });
});
