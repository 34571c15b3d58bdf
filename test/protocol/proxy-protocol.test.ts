import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseProxyHeader } from '../../src/protocol/proxy-protocol.ts';
import type { ProxyHeader, ProxyParseResult } from '../../src/protocol/proxy-protocol.ts';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}
function ascii(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}
const INCOMPLETE: ProxyParseResult = { kind: 'incomplete' };
const INVALID: ProxyParseResult = { kind: 'invalid', reason: 'ProxyHeaderInvalid' };
const LOCAL: ProxyHeader = { local: true };
function ok(bytesRead: number, header: ProxyHeader): ProxyParseResult {
  return { kind: 'ok', bytesRead, header };
}
function peers(sourceAddress: string, sourcePort: number, destAddress: string, destPort: number): ProxyHeader {
  return { local: false, sourceAddress, sourcePort, destAddress, destPort };
}

const SIG = '0d0a0d0a000d0a515549540a';
const FULL_V6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
const MAX_V1 = `PROXY UNKNOWN ${FULL_V6} ${FULL_V6} 65535 65535\r\n`; // exactly 107 bytes

describe('parseProxyHeader v1', () => {
  // [name, text in, expected]
  const cases: Array<[string, string, ProxyParseResult]> = [
    [
      'TCP4',
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
      ok(47, peers('192.168.0.1', 56324, '192.168.0.11', 443)),
    ],
    [
      'TCP4, ports 0 and 65535',
      'PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n',
      ok(36, peers('1.2.3.4', 0, '5.6.7.8', 65535)),
    ],
    [
      'TCP4, ports with every digit',
      'PROXY TCP4 1.2.3.4 5.6.7.8 12345 60789\r\n',
      ok(40, peers('1.2.3.4', 12345, '5.6.7.8', 60789)),
    ],
    [
      'TCP6, canonicalised',
      'PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 1 1080\r\n',
      ok(47, peers('2001:db8::1', 1, '2001:db8::2', 1080)),
    ],
    ['TCP6 IPv4-mapped', 'PROXY TCP6 ::ffff:10.0.0.1 ::1 5 6\r\n', ok(36, peers('::ffff:10.0.0.1', 5, '::1', 6))],
    ['UNKNOWN', 'PROXY UNKNOWN\r\n', ok(15, LOCAL)],
    ['UNKNOWN ignores the rest of the line', 'PROXY UNKNOWN whatever is here\r\n', ok(32, LOCAL)],
    ['107 bytes is the longest line', MAX_V1, ok(107, LOCAL)],
    // Invalid.
    ['not PROXY at all', 'GET / HTTP/1.1\r\n', INVALID],
    ['SOCKS4 without a header', '\x04\x01\x00\x50', INVALID],
    ['wrong keyword', 'PROXX TCP4', INVALID],
    ['lower case', 'proxy tcp4 1.2.3.4 5.6.7.8 1 2\r\n', INVALID],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', INVALID],
    ['no fields', 'PROXY \r\n', INVALID],
    ['unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', INVALID],
    ['UNKNOWN needs a space', 'PROXY UNKNOWNX\r\n', INVALID],
    ['missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', INVALID],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', INVALID],
    ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', INVALID],
    ['trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', INVALID],
    ['port 65536', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', INVALID],
    ['port with leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', INVALID],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', INVALID],
    ['port with sign', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', INVALID],
    ['bad IPv4', 'PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n', INVALID],
    ['IPv6 under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n', INVALID],
    ['IPv4 under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n', INVALID],
    ['IPv6 zone ID', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', INVALID],
    ['LF without CR, where the CR would be a digit', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 23\n', INVALID],
    ['unknown protocol with IPv6 addresses', 'PROXY TCP5 ::1 ::1 1 2\r\n', INVALID],
    ['empty source port', 'PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n', INVALID],
    ['letter in a port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n', INVALID],
    ['destination port 65536', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n', INVALID],
    ['TCP6 with one bad address', 'PROXY TCP6 ::1 ::g 1 2\r\n', INVALID],
    ['107 bytes without LF', 'PROXY UNKNOWN ' + 'x'.repeat(93), INVALID],
    ['108-byte line', MAX_V1.replace('UNKNOWN ', 'UNKNOWN  '), INVALID],
    // Short of complete.
    ['nothing', '', INCOMPLETE],
    ['P', 'P', INCOMPLETE],
    ['PROXY', 'PROXY', INCOMPLETE],
    ['no CRLF yet', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2', INCOMPLETE],
    ['CR without LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r', INCOMPLETE],
    ['106 bytes without LF', 'PROXY UNKNOWN ' + 'x'.repeat(92), INCOMPLETE],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parseProxyHeader(ascii(input)), expected);
    });
  }

  it('reads a header split at every byte', () => {
    for (const [, input, expected] of cases) {
      if (expected.kind !== 'ok') continue;
      const bytes = ascii(input);
      for (let i = 0; i < bytes.length; i++) {
        assert.deepEqual(parseProxyHeader(bytes.subarray(0, i)), INCOMPLETE, `${JSON.stringify(input)} cut at ${i}`);
      }
    }
  });

  it('points bytesRead at the SOCKS4 request behind the header', () => {
    const header = ascii('PROXY TCP4 10.0.0.1 10.0.0.2 1234 1080\r\n');
    const result = parseProxyHeader(Buffer.concat([header, hex('04 01 0050 01020304 00')]));
    assert.deepEqual(result, ok(header.length, peers('10.0.0.1', 1234, '10.0.0.2', 1080)));
  });
});

describe('parseProxyHeader v2', () => {
  const TCP4_BODY = 'c0a80001 c0a8000b dc04 01bb'; // 192.168.0.1:56324 → 192.168.0.11:443
  const TCP6_BODY = '20010db8000000000000000000000001 00000000000000000000ffff0a000001 0050 0438'; // 2001:db8::1:80 → ::ffff:10.0.0.1:1080
  // [name, hex in, expected]
  const cases: Array<[string, string, ProxyParseResult]> = [
    ['PROXY TCP4', `${SIG} 21 11 000c ${TCP4_BODY}`, ok(28, peers('192.168.0.1', 56324, '192.168.0.11', 443))],
    [
      'PROXY TCP4, every octet distinct',
      `${SIG} 21 11 000c 0a010203 04050607 0001 0002`,
      ok(28, peers('10.1.2.3', 1, '4.5.6.7', 2)),
    ],
    ['PROXY TCP6', `${SIG} 21 21 0024 ${TCP6_BODY}`, ok(52, peers('2001:db8::1', 80, '::ffff:10.0.0.1', 1080))],
    [
      'PROXY TCP4 with TLVs skipped',
      `${SIG} 21 11 0012 ${TCP4_BODY} 04 0003 000000`,
      ok(34, peers('192.168.0.1', 56324, '192.168.0.11', 443)),
    ],
    [
      'PROXY TCP6 with TLVs skipped',
      `${SIG} 21 21 0028 ${TCP6_BODY} 01 0001 68`,
      ok(56, peers('2001:db8::1', 80, '::ffff:10.0.0.1', 1080)),
    ],
    ['LOCAL, empty', `${SIG} 20 00 0000`, ok(16, LOCAL)],
    ['LOCAL ignores addresses', `${SIG} 20 11 000c ${TCP4_BODY}`, ok(28, LOCAL)],
    ['LOCAL ignores the family', `${SIG} 20 ff 0002 abcd`, ok(18, LOCAL)],
    ['PROXY AF_UNSPEC uses the real endpoints', `${SIG} 21 00 0000`, ok(16, LOCAL)],
    // Invalid.
    ['signature mismatch', '0d0a0d0a00 0d0a 51 55 49 54 0b', INVALID],
    ['signature mismatch early', '0d0a0d0b', INVALID],
    ['version 1', `${SIG} 11 11 000c ${TCP4_BODY}`, INVALID],
    ['version 3', `${SIG} 31`, INVALID],
    ['command 2', `${SIG} 22`, INVALID],
    ['PROXY UDP4', `${SIG} 21 12 000c ${TCP4_BODY}`, INVALID],
    ['PROXY UDP6', `${SIG} 21 22 0024 ${TCP6_BODY}`, INVALID],
    ['PROXY AF_UNIX stream', `${SIG} 21 31 00d8 ${'00'.repeat(216)}`, INVALID],
    ['PROXY unknown family', `${SIG} 21 41 000c ${TCP4_BODY}`, INVALID],
    ['TCP4 block too short', `${SIG} 21 11 000b c0a80001 c0a8000b dc04 01`, INVALID],
    ['TCP6 block too short, refused before the body arrives', `${SIG} 21 21 0023`, INVALID],
    // Short of complete.
    ['first byte', '0d', INCOMPLETE],
    ['signature only', SIG, INCOMPLETE],
    ['no length yet', `${SIG} 21 11 00`, INCOMPLETE],
    ['body short by one', `${SIG} 21 11 000c c0a80001 c0a8000b dc04 01`, INCOMPLETE],
    ['TLVs not yet arrived', `${SIG} 21 11 0012 ${TCP4_BODY} 04`, INCOMPLETE],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => {
      assert.deepEqual(parseProxyHeader(hex(input)), expected);
    });
  }

  it('reads a header split at every byte', () => {
    for (const [, input, expected] of cases) {
      if (expected.kind !== 'ok') continue;
      const bytes = hex(input);
      for (let i = 0; i < bytes.length; i++) {
        assert.deepEqual(parseProxyHeader(bytes.subarray(0, i)), INCOMPLETE, `${input} cut at ${i}`);
      }
      assert.deepEqual(parseProxyHeader(bytes), expected);
    }
  });

  it('points bytesRead at the SOCKS4 request behind the header', () => {
    const header = hex(`${SIG} 21 11 000c ${TCP4_BODY}`);
    const result = parseProxyHeader(Buffer.concat([header, hex('04 01 0050 01020304 00')]));
    assert.equal(result.kind === 'ok' && result.bytesRead, header.length);
  });
});

describe('parseProxyHeader properties', () => {
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // Random tails behind each version's opening, so the fuzzer gets past the first byte.
    fc
      .tuple(
        fc.constantFrom(hex(SIG), hex(`${SIG} 21`), ascii('PROXY '), ascii('PROXY TCP4 ')),
        fc.uint8Array({ maxLength: 300 }),
      )
      .map(([head, tail]) => new Uint8Array(Buffer.concat([head, tail]))),
    fc
      .tuple(
        fc.constantFrom('TCP4', 'TCP6', 'UNKNOWN'),
        fc.array(fc.constantFrom('1.2.3.4', '::1', '0', '65535', '65536', '', 'x', '2001:db8::1', '::ffff:1.2.3.4'), {
          maxLength: 5,
        }),
        fc.constantFrom('\r\n', '\n', '', '\r\n\x04'),
      )
      .map(([proto, fields, end]) => new Uint8Array(ascii(['PROXY', proto, ...fields].join(' ') + end))),
  );

  it('never throws, and always returns one of the three kinds with bytesRead in range', () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        const buf = Buffer.from(bytes);
        const result = parseProxyHeader(buf);
        assert.ok(['incomplete', 'ok', 'invalid'].includes(result.kind));
        if (result.kind === 'ok') assert.ok(result.bytesRead > 0 && result.bytesRead <= buf.length);
      }),
      { numRuns: 1000 },
    );
  });

  it('once a prefix decides, every longer input decides the same way', () => {
    fc.assert(
      fc.property(anyBytes, fc.nat(300), (bytes, cut) => {
        const buf = Buffer.from(bytes);
        const early = parseProxyHeader(buf.subarray(0, Math.min(cut, buf.length)));
        if (early.kind !== 'incomplete') assert.deepEqual(parseProxyHeader(buf), early);
      }),
      { numRuns: 1000 },
    );
  });
});
