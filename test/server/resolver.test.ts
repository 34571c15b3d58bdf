// The resolver (src/server/resolver.ts) against a real UDP DNS server on a loopback port:
// /etc/hosts first, answers cached for their TTL, "no such name" cached briefly, one query per
// name however many ask, the per-query deadline, caps in flight, and cancellation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Reason, SocksError } from '../../src/errors.ts';
import { createResolver, parseHosts } from '../../src/server/resolver.ts';
import { freePort } from '../helpers/spawn.ts';
import { startFakeDns, type FakeDns } from '../hostile/fake-dns.ts';

let dns: FakeDns;
let port: number;
let dir: string;
let hostsPath: string;
before(async () => {
  port = await freePort();
  dns = await startFakeDns({ 'a.test': '127.0.0.7', 'b.test': '127.0.0.8' }, '127.0.0.1', port);
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-resolver-'));
  hostsPath = path.join(dir, 'hosts');
  await writeFile(hostsPath, '# comment\n127.0.0.9 hosted.test Alias.Test\n::1 ip6only.test\n');
});
after(async () => {
  await dns.close();
  await rm(dir, { recursive: true, force: true });
});

const make = (extra: Partial<Parameters<typeof createResolver>[0]> = {}) =>
  createResolver({
    timeoutMs: 300,
    maxInFlight: 4,
    maxPerSource: 2,
    servers: [`127.0.0.1:${port}`],
    hostsPath,
    ...extra,
  });

const reasonOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'resolved';
  } catch (error) {
    return error instanceof SocksError ? error.reason : String(error);
  }
};

test('parseHosts: IPv4 entries only, names lower-cased, first address wins', () => {
  assert.deepEqual(
    [...parseHosts('1.2.3.4 A.example b\n5.6.7.8 a.example\n::1 v6\n')],
    [
      ['a.example', '1.2.3.4'],
      ['b', '1.2.3.4'],
    ],
  );
});

test('/etc/hosts before DNS; literals as themselves (::ffff: mapped ones in IPv4 form); IPv6 refused', async () => {
  const r = make();
  assert.equal(await r.resolve('hosted.test'), '127.0.0.9');
  assert.equal(await r.resolve('ALIAS.test.'), '127.0.0.9');
  assert.equal(dns.received.get('hosted.test'), undefined, 'a hosts name never reaches DNS');
  assert.equal(await r.resolve('10.1.2.3'), '10.1.2.3');
  assert.equal(await r.resolve('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(await reasonOf(r.resolve('::1')), Reason.DnsFailed);
});

test('answers and "no such name" are cached; concurrent askers share one query', async () => {
  const r = make();
  const both = await Promise.all([r.resolve('a.test', { source: 'x' }), r.resolve('a.test', { source: 'y' })]);
  assert.deepEqual(both, ['127.0.0.7', '127.0.0.7']);
  assert.equal(await r.resolve('a.test'), '127.0.0.7');
  assert.equal(dns.received.get('a.test'), 1);
  assert.equal(await reasonOf(r.resolve('missing.test')), Reason.DnsFailed);
  assert.equal(await reasonOf(r.resolve('missing.test')), Reason.DnsFailed);
  assert.equal(dns.received.get('missing.test'), 1);
});

test('a silent name fails at the deadline; caps refuse at once; cancelling frees the place', async () => {
  const r = make();
  const started = performance.now();
  assert.equal(await reasonOf(r.resolve('silent-1.test')), Reason.DnsFailed);
  const ms = performance.now() - started;
  assert.ok(ms >= 250 && ms < 2000, `deadline after ${Math.round(ms)} ms`);

  const abort = new AbortController();
  const held = [
    r.resolve('silent-2.test', { source: 's', signal: abort.signal }),
    r.resolve('silent-3.test', { source: 's' }),
  ];
  assert.equal(await reasonOf(r.resolve('b.test', { source: 's' })), Reason.DnsOverloaded, 'over the per-source cap');
  assert.equal(await r.resolve('b.test', { source: 'other' }), '127.0.0.8', 'another source is served');
  abort.abort();
  assert.equal(await reasonOf(held[0]!), Reason.ClientAborted);
  assert.equal(r.inFlight, 1, 'the cancelled query left the caps at once');
  await held[1]!.catch(() => {});
});
