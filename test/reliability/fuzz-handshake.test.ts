// Hostile handshakes: the codec against an independent model on random and mutated bytes (every
// split offset, oversized fields, NULs in names, pipelined requests), then the same kind of input
// through a real proxy over TCP: every case ends in a defined reply or close within the deadline,
// nothing crashes, nothing is left open. `make test` runs a seeded sample; `make soak` (SOAK=1)
// runs over a million codec cases and tens of thousands of TCP sessions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { parseRequest } from '../../src/protocol/parse-request.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { connectRaw, socks4Request } from '../helpers/servers.ts';
import { clientStream, MAX_REQUEST_BYTES, referenceParse, type RefResult } from './handshake-model.ts';
import {
  FUZZ_CONFIG,
  SLACK_MS,
  fuzzCase,
  runCase,
  runCases,
  settled,
  startFuzzTarget,
  type FuzzCase,
  type FuzzTarget,
} from './session-fuzz.ts';

const soak = process.env.SOAK === '1';
const seed = Number(process.env.FUZZ_SEED ?? (soak ? Date.now() % 2 ** 31 : 424242));
const CODEC_RUNS = Number(process.env.FUZZ_CODEC_RUNS ?? (soak ? 1_000_000 : 20_000));
const SESSION_CASES = Number(process.env.FUZZ_SESSION_CASES ?? (soak ? 100_000 : 600));

let target: FuzzTarget;
const problems: unknown[] = [];
const onProblem = (error: unknown): void => void problems.push(error);
const reasons = new Map<number, string | null>(); // client port → reason the session ended with
const onEnd = (message: unknown): void => {
  const s = message as SessionInfo;
  reasons.set(s.clientPort, s.reason);
};

before(async () => {
  process.on('unhandledRejection', onProblem);
  channels.sessionEnd.subscribe(onEnd);
  target = await startFuzzTarget();
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  process.removeListener('unhandledRejection', onProblem);
  await target.close();
});

/** True when the codec's answer is the model's answer. */
function agrees(buf: Buffer, ref: RefResult): boolean {
  const got = parseRequest(buf);
  if (got.kind !== ref.kind) return false;
  if (got.kind === 'invalid' && ref.kind === 'invalid') return got.reason === ref.reason;
  if (got.kind !== 'ok' || ref.kind !== 'ok') return true;
  const r = got.request;
  return (
    got.bytesRead === ref.bytesRead &&
    r.command === ref.command &&
    r.port === ref.port &&
    r.ip === ref.ip &&
    r.userId === Buffer.from(ref.userId).toString('utf8') &&
    r.host === (ref.host === null ? null : Buffer.from(ref.host).toString('utf8'))
  );
}

test(`codec = model on ${CODEC_RUNS} random and mutated streams, at every split offset (seed ${seed})`, (t) => {
  let prefixes = 0;
  fc.assert(
    fc.property(clientStream(1080), (stream) => {
      const buf = Buffer.from(stream);
      const full = referenceParse(buf);
      if (!agrees(buf, full)) return false;
      // Every prefix: the codec answers what the model answers, so a request split at any
      // offset is read the same, and a verdict once reached never changes with more bytes.
      const stop = full.kind === 'ok' ? full.bytesRead : buf.length;
      for (let k = 0; k < stop; k++) {
        prefixes++;
        const ref = referenceParse(buf.subarray(0, k));
        if (!agrees(buf.subarray(0, k), ref)) return false;
        if (ref.kind !== 'incomplete' && ref.kind !== full.kind) return false;
      }
      return true;
    }),
    { seed, numRuns: CODEC_RUNS },
  );
  t.diagnostic(`cases ${CODEC_RUNS}, prefixes checked ${prefixes}`);
});

test('the codec never asks for more than one maximal request: pending bytes stay bounded', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: MAX_REQUEST_BYTES, maxLength: 2 * MAX_REQUEST_BYTES }),
      fc.constantFrom(1, 2),
      (tail, cd) => {
        const buf = Buffer.from([4, cd, 0, 80, 0, 0, 0, 9, ...tail]);
        return parseRequest(buf).kind !== 'incomplete';
      },
    ),
    { seed, numRuns: soak ? 20_000 : 2_000 },
  );
  // The worst case exactly: 255-byte USERID and 255-byte name without their final NUL.
  const worst = Buffer.concat([
    Buffer.from([4, 1, 0, 80, 0, 0, 0, 9]),
    Buffer.alloc(255, 0x75),
    Buffer.from([0]),
    Buffer.alloc(255, 0x68),
  ]);
  assert.equal(parseRequest(worst).kind, 'incomplete');
  assert.equal(parseRequest(Buffer.concat([worst, Buffer.from([0x68])])).kind, 'invalid');
  assert.equal(worst.length + 1, MAX_REQUEST_BYTES);
});

test(`${SESSION_CASES} hostile sessions over TCP each end in a defined reply or close (seed ${seed})`, {
  timeout: soak ? 3_600_000 : 120_000,
}, async (t) => {
  const cases = fc.sample(fuzzCase(target.echoPort), { seed, numRuns: SESSION_CASES });
  const { counts, failures } = await runCases(target, cases, soak ? 96 : 48);
  t.diagnostic(`outcomes ${JSON.stringify(counts)}`);
  assert.deepEqual(failures, []);
  assert.deepEqual(
    await settled(target.proxy),
    { sessions: 0, handshakes: 0 },
    'a session or handshake slot was left open',
  );
  assert.deepEqual(problems, [], 'unhandled rejections');
});

/** Sends `request` split at `offset`, waits a little between the halves, returns the case result. */
function splitCase(request: Buffer, offset: number, extra: Partial<FuzzCase> = {}): FuzzCase {
  return {
    stream: request,
    cuts: offset === 0 ? [] : [offset],
    gapMs: 5,
    ending: 'wait',
    destroyAtMs: 0,
    bindPeer: 'match',
    ...extra,
  };
}

test('a request split at every offset gets the same answer as in one piece', async () => {
  const pipelined = Buffer.concat([
    socks4Request(1, target.echoPort, '127.0.0.1', 'pipe'),
    Buffer.from('GET / HTTP/1.0\r\n\r\n'),
  ]);
  const requests = [
    socks4Request(1, target.echoPort, '127.0.0.1', 'alice'),
    socks4Request(1, target.echoPort, '0.0.0.1', 'bob', 'echo.test'),
    socks4Request(2, 4000, '127.0.0.1', 'carol'),
    Buffer.concat([pipelined, socks4Request(1, target.echoPort, '127.0.0.1', 'second')]),
    socks4Request(1, 9, '127.0.0.1', 'denied'),
  ];
  const failures: string[] = [];
  let n = 0;
  for (const request of requests) {
    const cases = Array.from({ length: request.length }, (_, offset) => splitCase(request, offset));
    const result = await runCases(target, cases, 16);
    n += cases.length;
    failures.push(...result.failures);
  }
  assert.deepEqual(failures, []);
  assert.equal(
    n,
    requests.reduce((sum, r) => sum + r.length, 0),
  );
});

/** One case through the proxy; returns the reason the session ended with. */
async function reasonFor(request: Buffer, extra: Partial<FuzzCase> = {}): Promise<string | null> {
  reasons.clear(); // cases run one at a time here, so the next session:end is this one's
  const { failure } = await runCase(target, splitCase(request, 0, extra));
  assert.equal(failure, null);
  for (let i = 0; i < 100; i++) {
    const [only] = reasons.values();
    if (only !== undefined) return only;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return 'no session:end';
}

test('oversized fields, NULs in names and empty names end with their stable reason', async () => {
  const p = target.echoPort;
  const head = (ip: number[]): Buffer => Buffer.from([4, 1, p >> 8, p & 0xff, ...ip]);
  const user = (n: number): Buffer => Buffer.alloc(n, 0x75);
  const table: [string, Buffer, string | null][] = [
    ['USERID of 255 bytes', socks4Request(1, p, '127.0.0.1', 'u'.repeat(255)), null],
    ['USERID of 256 bytes', Buffer.concat([head([127, 0, 0, 1]), user(256), Buffer.from([0])]), 'UserIdTooLong'],
    ['USERID of 64 KiB, no NUL', Buffer.concat([head([127, 0, 0, 1]), user(65536)]), 'UserIdTooLong'],
    ['name of 256 bytes', socks4Request(1, p, '0.0.0.1', '', `${'a'.repeat(243)}.allowed.test`), 'HostnameTooLong'],
    [
      'name of 255 bytes with a label over 63',
      socks4Request(1, p, '0.0.0.1', '', `${'a'.repeat(242)}.allowed.test`),
      'InvalidHostname',
    ],
    [
      'name of 253 characters, the longest host name, allowed',
      socks4Request(
        1,
        p,
        '0.0.0.1',
        '',
        `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(48)}.allowed.test`,
      ),
      null,
    ],
    ['empty 4a name', socks4Request(1, p, '0.0.0.1', 'x', ''), 'EmptyHostname'],
    [
      'NUL inside the name cuts it: "echo" resolves nowhere',
      socks4Request(1, p, '0.0.0.1', '', 'echo\0.test'),
      'DnsFailed',
    ],
    [
      'NUL inside USERID: the rest is the 4a name',
      Buffer.concat([head([0, 0, 0, 7]), Buffer.from('a\0echo.test\0')]),
      null,
    ],
    ['DSTPORT 0', Buffer.from([4, 1, 0, 0, 127, 0, 0, 1, 0]), 'ZeroPort'],
    ['unknown CD', Buffer.from([4, 3, 0, 80, 127, 0, 0, 1, 0]), 'BadCommand'],
    ['VN 5', Buffer.from([5, 1, 0, 80, 127, 0, 0, 1, 0]), 'BadVersion'],
    ['HTTP instead of SOCKS', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'BadVersion'],
    ['TLS ClientHello', Buffer.from('16030100a5010000a103035e', 'hex'), 'BadVersion'],
  ];
  for (const [name, request, reason] of table) {
    assert.equal(await reasonFor(request), reason, name);
  }
});

test('no listener is left stuck: a silent client and a stalled one time out, the proxy still serves', async () => {
  const silent = net.connect({ host: '127.0.0.1', port: target.port });
  silent.on('error', () => {});
  assert.equal(await reasonFor(Buffer.alloc(0)), 'HandshakeTimeout');
  assert.equal(await reasonFor(socks4Request(1, target.echoPort, '127.0.0.1', 'x').subarray(0, 9)), 'HandshakeTimeout');
  assert.equal(await reasonFor(socks4Request(1, target.echoPort, '127.0.0.1', 'after')), null);
  silent.destroy();
  assert.deepEqual(await settled(target.proxy), { sessions: 0, handshakes: 0 });
});

test('found by the fuzzer: a FIN sent right after the request is relayed, not lost', async () => {
  // The client socket is paused while the session decides; its 'end' fired before the relay
  // listened for it, so the upstream never saw the FIN and the session stayed open for good.
  const request = Buffer.concat([socks4Request(1, target.echoPort, '127.0.0.1', 'fin'), Buffer.from('last words')]);
  for (let i = 0; i < 20; i++) {
    const { failure } = await runCase(target, { ...splitCase(request, 0), ending: 'half-close' });
    assert.equal(failure, null);
  }
  assert.deepEqual(await settled(target.proxy), { sessions: 0, handshakes: 0 });
});

test('found by the fuzzer: a granted BIND waits for its peer past the handshake deadline', async () => {
  // The handshake timer used to run on after the first 90 and close the session silently.
  const raw = await connectRaw(target.port);
  raw.socket.write(socks4Request(2, 4000, '127.0.0.1', 'late-peer'));
  const first = await raw.read(8);
  assert.equal(first[1], 90);
  // Past the handshake deadline, known by an event rather than a sleep: a client that connects
  // now and stays silent is refused at that deadline, which runs out after this session's would.
  const silent = await connectRaw(target.port);
  silent.socket.write(Buffer.from([4]));
  assert.deepEqual([...(await silent.read(8, FUZZ_CONFIG.handshakeTimeoutMs + SLACK_MS))], [0, 91, 0, 0, 0, 0, 0, 0]);
  await silent.closed;
  assert.equal(raw.socket.destroyed, false, 'the granted BIND was closed at the handshake deadline');
  const peer = net.connect({ host: '127.0.0.1', port: first.readUInt16BE(2), localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  const second = await raw.read(8);
  assert.equal(second[1], 90, 'the second reply');
  peer.write('from the peer');
  assert.equal((await raw.read(13)).toString(), 'from the peer');
  peer.destroy();
  raw.socket.destroy();
});
