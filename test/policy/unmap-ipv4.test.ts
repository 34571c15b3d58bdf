// unmapIpv4: the one place an IPv4-mapped IPv6 address becomes a.b.c.d (clients, BIND peers,
// resolver answers, pod addresses, ident), and the one IPv4 parser behind the reply encoder.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unmapIpv4 } from '../../src/policy/ip.ts';
import { encodeReply } from '../../src/protocol/encode.ts';
import { ReplyCode } from '../../src/protocol/constants.ts';

test('unmapIpv4 turns every spelling of a mapped address into dotted IPv4 and leaves the rest', () => {
  const cases: Array<[string, string]> = [
    ['::ffff:127.0.0.1', '127.0.0.1'], // what a dual-stack listener reports
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['::ffff:7f00:1', '127.0.0.1'], // a SOCKS4a name spelling the address in hex
    ['0:0:0:0:0:ffff:a0b:c0d', '10.11.12.13'],
    ['0::ffff:1.2.3.4', '1.2.3.4'],
    // Unchanged: plain IPv4 (whatever it is), IPv6 that is not mapped, names, malformed text.
    ['127.0.0.1', '127.0.0.1'],
    ['01.2.3.4', '01.2.3.4'],
    ['', ''],
    ['::1', '::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['::ffff:01.2.3.4', '::ffff:01.2.3.4'],
    ['::ffff:1.2.3', '::ffff:1.2.3'],
    ['::ffff:', '::ffff:'],
    ['example.com', 'example.com'],
  ];
  for (const [input, want] of cases) assert.equal(unmapIpv4(input), want, JSON.stringify(input));
});

test('the reply encoder reads addresses with the same parser: mapped spellings, nothing else', () => {
  assert.equal(encodeReply(ReplyCode.Granted, 80, '::ffff:7f00:1').toString('hex'), '005a00507f000001');
  assert.throws(() => encodeReply(ReplyCode.Granted, 80, '::ffff:01.2.3.4'), /not an IPv4 address/);
});
