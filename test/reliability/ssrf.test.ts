// SSRF and policy-bypass probes against a proxy whose policy allows "the internet" (0.0.0.0/0 and
// any host name): loopback in every spelling the system resolver accepts, 0.0.0.0, link-local and
// metadata addresses, the proxy's own address, names whose (test-controlled) DNS answer is a
// guarded address, a name whose answer changes between lookups, BIND peers from the wrong
// address. None gets through unless a rule names the range by explicit CIDR; positive controls
// show the same probes do get through when one does, so a refusal here is the guard's doing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dns from 'node:dns';
import net from 'node:net';
import { once } from 'node:events';
import { Reason, SocksError } from '../../src/errors.ts';
import { localAddresses } from '../../src/server/proxy-server.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import {
  connectRaw,
  loopbackOnlyDial,
  socks4Request,
  startEchoServer,
  startProxy,
  type TestProxy,
} from '../helpers/servers.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ssrf, namespace: reliability}
spec:
  rules:
    - {name: two-connect, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.2/32"]}}
    - {name: two-bind, action: Allow, commands: [Bind], to: {cidrs: ["127.0.0.2/32"]}}
    - {name: example-loopback, action: Allow, to: {hosts: ["*.example.com"], cidrs: ["127.0.0.0/8"]}}
    - {name: localhost-by-name, action: Allow, to: {hosts: ["localhost", "*.internal"]}}
    - {name: internet, action: Allow, to: {cidrs: ["0.0.0.0/0"]}}
    - {name: any-name, action: Allow, to: {hosts: ["*"]}}
`;

// The proxy's own non-loopback address when the host has one (a bypass would stay on this host).
const selfAddress = [...localAddresses()].find((a) => !a.startsWith('127.')) ?? '192.0.2.77';

type Echo = Awaited<ReturnType<typeof startEchoServer>>;
const escaped: string[] = [];
let sentinel: Echo; // 127.0.0.1: nothing may reach it
let two: Echo; // 127.0.0.2: reachable, the policy names it
let trap: net.Server; // 127.0.0.3 on two's port: a rebinding target nothing may reach
const trapped: net.Socket[] = [];
let system: TestProxy; // the system resolver (getaddrinfo)
let controlled: TestProxy; // DNS answers chosen by the test
const lookups = new Map<string, number>();

/** Answers by name; `rebind*.test` answers differently on each lookup. */
const answers: Record<string, string[]> = {
  'evil.test': ['127.0.0.1'],
  'short.test': ['127.1'], // not canonical dotted quad: must not be trusted as an address
  'v6loop.test': ['::1'],
  'mapped.test': ['::ffff:127.0.0.1'],
  'mappedhex.test': ['::ffff:7f00:1'],
  'mappedlong.test': ['0:0:0:0:0:ffff:7f00:1'],
  'any.test': ['0.0.0.0'],
  'anyv6.test': ['::'],
  'metadata.test': ['169.254.169.254'],
  'linklocal.test': ['169.254.0.1'],
  'self.test': [selfAddress],
  'name.test': ['localhost'],
  'empty.test': [''],
  'evil.internal': ['127.0.0.1'],
  'ok.example.com': ['127.0.0.1'],
  'good.test': ['127.0.0.2'],
  'rebind-late.test': ['127.0.0.2', '127.0.0.3'],
  'rebind-early.test': ['127.0.0.3', '127.0.0.2'],
};

async function resolveControlled(name: string): Promise<string> {
  const n = lookups.get(name) ?? 0;
  lookups.set(name, n + 1);
  const list = answers[name];
  if (list === undefined) throw new SocksError(Reason.DnsFailed, 'no such test name');
  return list[Math.min(n, list.length - 1)]!;
}

const ended: SessionInfo[] = [];
const onEnd = (message: unknown): void => void ended.push(message as SessionInfo);

before(async () => {
  channels.sessionEnd.subscribe(onEnd);
  sentinel = await startEchoServer('127.0.0.1');
  two = await startEchoServer('127.0.0.2');
  trap = net.createServer((socket) => trapped.push(socket.on('error', () => {})));
  trap.listen(two.port, '127.0.0.3');
  await once(trap, 'listening');
  // Both proxies dial through loopbackOnlyDial: were the guard to let a probe through, the
  // address is recorded and the test fails, without a packet leaving this machine.
  const dial = loopbackOnlyDial(escaped);
  system = await startProxy(policy, { selfAddresses: [selfAddress], dial, config: { connectTimeoutMs: 1000 } });
  controlled = await startProxy(policy, {
    resolve: resolveControlled,
    selfAddresses: [selfAddress],
    dial,
    config: { connectTimeoutMs: 1000 },
  });
});

after(async () => {
  // Everything this file started is stopped before any verdict: a failed check must end the run
  // with its message, not leave servers holding the process open until an outer timeout.
  channels.sessionEnd.unsubscribe(onEnd);
  await system.close();
  await controlled.close();
  for (const socket of trapped) socket.destroy();
  await new Promise((resolve) => trap.close(resolve));
  await sentinel.close();
  await two.close();
  assert.deepEqual(escaped, [], 'the proxy tried to dial a non-loopback address');
});

interface Probe {
  code: number | undefined;
  reason: string | null;
  destIp: string | null;
}

/** Sends one request, returns the reply code and the reason the session ended with. */
async function probe(proxy: TestProxy, request: Buffer): Promise<Probe> {
  ended.length = 0;
  const raw = await connectRaw(proxy.port);
  raw.socket.write(request);
  const reply = await raw.read(8);
  raw.socket.destroy();
  for (let i = 0; i < 200 && ended.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  const s = ended[0];
  return { code: reply[1], reason: s?.reason ?? 'no session:end', destIp: s?.destIp ?? null };
}

const connect4a = (name: string, port: number): Buffer => socks4Request(1, port, '0.0.0.1', 'probe', name);

test('loopback in every spelling getaddrinfo accepts is refused; the same spellings of a named address pass', async (t) => {
  const spellings = [
    'localhost',
    'LOCALHOST',
    '127.0.0.1',
    '127.1',
    '127.0.1',
    '0x7f000001',
    '0x7f.0.0.1',
    '2130706433',
    '0177.0.0.1',
    '017700000001',
    '127.000.000.001',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::1',
    '0',
    '0x0',
    '0.0.0.0',
    '::',
  ];
  // Only spellings getaddrinfo settles from /etc/hosts or as numbers: no query leaves the host.
  for (const name of spellings) {
    const answer = await dns.promises.lookup(name, { family: 4 }).then(
      (r) => r.address,
      (e: NodeJS.ErrnoException) => e.code ?? 'error',
    );
    const result = await probe(system, connect4a(name, sentinel.port));
    t.diagnostic(`${JSON.stringify(name)} → getaddrinfo ${answer} → ${result.code} ${result.reason}`);
    assert.equal(result.code, 91, name);
    // IPv6 other than IPv4-mapped is not a name SOCKS4 can use: refused before any lookup.
    const expected =
      name.includes(':') && !name.startsWith('::ffff:')
        ? Reason.InvalidHostname
        : net.isIP(answer)
          ? Reason.GuardedDestination
          : Reason.DnsFailed;
    assert.equal(result.reason, expected, name);
  }
  // Positive control: 127.0.0.2 is named by CIDR, so its odd spellings resolve and pass.
  for (const name of ['127.0.0.2', '0x7f000002', '2130706434', '127.2']) {
    const result = await probe(system, connect4a(name, two.port));
    assert.deepEqual([result.code, result.destIp], [90, '127.0.0.2'], name);
  }
  assert.equal(sentinel.connections.length, 0, 'a loopback probe reached 127.0.0.1');
});

test('guarded DSTIPs are refused under 0.0.0.0/0: loopback, 0.0.0.0/8, link-local, metadata, own address', async () => {
  const table = [
    '127.0.0.1',
    '127.255.255.254',
    '0.0.0.0',
    '0.1.2.3',
    '0.255.255.255',
    '169.254.169.254',
    '169.254.0.1',
    selfAddress,
  ];
  for (const ip of table) {
    const result = await probe(system, socks4Request(1, sentinel.port, ip, 'probe'));
    assert.deepEqual([result.code, result.reason], [91, Reason.GuardedDestination], ip);
  }
  // BIND is guarded the same way: its DSTIP names the peer it will accept.
  const bind = await probe(system, socks4Request(2, sentinel.port, '127.0.0.1', 'probe'));
  assert.deepEqual([bind.code, bind.reason], [91, Reason.GuardedDestination]);
  assert.equal(sentinel.connections.length, 0);
  assert.deepEqual(escaped, [], 'a guarded address was dialled');
});

test('4a names whose DNS answer is guarded, or not an IPv4 address, are refused', async () => {
  const refused = [
    'evil.test',
    'short.test',
    'v6loop.test',
    'mapped.test',
    'mappedhex.test',
    'mappedlong.test',
    'any.test',
    'anyv6.test',
    'metadata.test',
    'linklocal.test',
    'self.test',
    'name.test',
    'empty.test',
    'evil.internal',
    'EVIL.Internal.',
    'localhost',
  ];
  for (const name of refused) {
    const result = await probe(controlled, connect4a(name, sentinel.port));
    const expected = name === 'localhost' ? Reason.DnsFailed : Reason.GuardedDestination;
    assert.deepEqual([result.code, result.reason], [91, expected], name);
  }
  const empty = await probe(controlled, socks4Request(1, sentinel.port, '0.0.0.1', 'probe', ''));
  assert.deepEqual([empty.code, empty.reason], [91, Reason.EmptyHostname]);
  assert.equal(lookups.get(''), undefined, 'an empty name was looked up');
  // Positive controls: a host rule that also names 127.0.0.0/8 opens it; so does 127.0.0.2/32.
  assert.equal((await probe(controlled, connect4a('ok.example.com', sentinel.port))).code, 90);
  assert.equal((await probe(controlled, connect4a('good.test', two.port))).code, 90);
  assert.equal(sentinel.connections.length, 1, 'only the positive control reached 127.0.0.1');
});

test('a name whose answer changes between lookups is resolved once and dialled at the checked address', async () => {
  const connectionsBefore = two.connections.length;
  const late = await probe(controlled, connect4a('rebind-late.test', two.port));
  assert.deepEqual([late.code, late.destIp], [90, '127.0.0.2']);
  assert.equal(lookups.get('rebind-late.test'), 1);
  for (let i = 0; i < 100 && two.connections.length === connectionsBefore; i++)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(two.connections.length, connectionsBefore + 1, 'the checked address 127.0.0.2 was dialled');
  // First answer guarded: refused, and not asked again hoping for a better one.
  const early = await probe(controlled, connect4a('rebind-early.test', two.port));
  assert.deepEqual([early.code, early.reason], [91, Reason.GuardedDestination]);
  assert.equal(lookups.get('rebind-early.test'), 1);
  assert.equal(trapped.length, 0, 'a connection reached 127.0.0.3');
});

/** BIND with `request`; a peer then connects from `peerAddress`; returns both replies' codes. */
async function bindFrom(
  request: Buffer,
  peerAddress: string,
): Promise<{ first: number | undefined; second: number | undefined; peerClosed: boolean }> {
  const raw = await connectRaw(controlled.port);
  raw.socket.write(request);
  const first = await raw.read(8);
  if (first[1] !== 90) {
    raw.socket.destroy();
    return { first: first[1], second: undefined, peerClosed: true };
  }
  const peer = net.connect({
    host: first.subarray(4, 8).join('.'),
    port: first.readUInt16BE(2),
    localAddress: peerAddress,
  });
  peer.on('error', () => {});
  const peerGone = new Promise<boolean>((resolve) => {
    peer.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 3000).unref();
  });
  const second = await raw.read(8);
  const code = second[1];
  if (code === 90) peer.destroy();
  const peerClosed = await peerGone;
  raw.socket.destroy();
  return { first: 90, second: code, peerClosed };
}

test('BIND: a peer from any address but the checked one gets 91 and both sides closed', async () => {
  const plain = socks4Request(2, 1, '127.0.0.2', 'probe');
  assert.deepEqual(await bindFrom(plain, '127.0.0.3'), { first: 90, second: 91, peerClosed: true });
  assert.deepEqual(await bindFrom(plain, '127.0.0.1'), { first: 90, second: 91, peerClosed: true });
  assert.deepEqual(await bindFrom(plain, '127.0.0.2'), { first: 90, second: 90, peerClosed: true });
  // 4a BIND: the peer must come from the address the name resolved to.
  const named = socks4Request(2, 1, '0.0.0.1', 'probe', 'good.test');
  assert.deepEqual(await bindFrom(named, '127.0.0.1'), { first: 90, second: 91, peerClosed: true });
  assert.deepEqual(await bindFrom(named, '127.0.0.2'), { first: 90, second: 90, peerClosed: true });
  assert.deepEqual(await bindFrom(socks4Request(2, 1, '0.0.0.1', 'probe', 'evil.test'), '127.0.0.1'), {
    first: 91,
    second: undefined,
    peerClosed: true,
  });
});
