// Drives hostile handshakes through a real proxy over real TCP and checks each against the model
// in handshake-model.ts: a defined reply or close, within the deadline, bytes after the request
// relayed verbatim. Shared by fuzz-handshake.test.ts (a seeded sample) and the soak run.
import net from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { Reason, SocksError } from '../../src/errors.ts';
import { startEchoServer, startProxy, type Closable, type TestProxy } from '../helpers/servers.ts';
import { clientStream, expectOutcome, fuzzResolveAnswer, type Expected } from './handshake-model.ts';

export interface FuzzCase {
  stream: Uint8Array;
  cuts: number[]; // split offsets, ascending: each piece is written separately
  gapMs: number; // pause between pieces (0 = next tick)
  ending: 'wait' | 'half-close' | 'destroy';
  destroyAtMs: number;
  bindPeer: 'none' | 'match' | 'mismatch';
}

export function fuzzCase(echoPort: number): fc.Arbitrary<FuzzCase> {
  return clientStream(echoPort).chain((stream) =>
    fc.record({
      stream: fc.constant(stream),
      cuts: fc
        .uniqueArray(fc.integer({ min: 1, max: Math.max(1, stream.length - 1) }), { maxLength: 4 })
        .map((c) => c.filter((x) => x < stream.length).sort((a, b) => a - b)),
      gapMs: fc.constantFrom(0, 0, 1, 5),
      ending: fc.oneof(
        { weight: 5, arbitrary: fc.constant('wait' as const) },
        { weight: 3, arbitrary: fc.constant('half-close' as const) },
        { weight: 1, arbitrary: fc.constant('destroy' as const) },
      ),
      destroyAtMs: fc.nat(30),
      bindPeer: fc.constantFrom('none' as const, 'match' as const, 'mismatch' as const),
    }),
  );
}

export const FUZZ_CONFIG = { handshakeTimeoutMs: 500, bindAcceptTimeoutMs: 800, connectTimeoutMs: 2000 } as const;
/** How late past a deadline an answer may come on a busy two-core machine. */
export const SLACK_MS = 2000;

export interface FuzzTarget extends Closable {
  proxy: TestProxy;
  echoPort: number;
}

export async function startFuzzTarget(): Promise<FuzzTarget> {
  const echo = await startEchoServer();
  const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: fuzz, namespace: reliability}
spec:
  rules:
    - {name: echo, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}}
    - {name: bind, action: Allow, commands: [Bind], to: {cidrs: ["127.0.0.1/32"]}}
`;
  const proxy = await startProxy(policy, {
    config: FUZZ_CONFIG,
    resolve: async (name) => {
      const answer = fuzzResolveAnswer(name);
      if (answer === null) throw new SocksError(Reason.DnsFailed, 'not in the fuzz zone');
      return answer;
    },
  });
  return {
    proxy,
    echoPort: echo.port,
    port: proxy.port,
    async close() {
      await proxy.close();
      await echo.close();
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A socket that records what arrives and when it closed. */
function watch(socket: net.Socket): {
  bytes: () => Buffer;
  closedAt: Promise<number>;
  waitFor: (n: number, ms: number) => Promise<Buffer>;
} {
  let received = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    wake?.();
  });
  // The proxy's FIN is its close: it lingers on its side only to drain what the client sends.
  const closedAt = new Promise<number>((resolve) => {
    const done = (): void => {
      resolve(performance.now());
      wake?.();
    };
    socket.once('end', done);
    socket.once('close', done);
  });
  return {
    bytes: () => received,
    closedAt,
    async waitFor(n, ms) {
      const deadline = performance.now() + ms;
      while (received.length < n && !socket.destroyed && !socket.readableEnded && performance.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, deadline - performance.now()));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
      return received;
    },
  };
}

async function closedWithin(closedAt: Promise<number>, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  const result = await Promise.race([closedAt, late]);
  clearTimeout(timer);
  return result;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const isReply = (b: Buffer, code: number): boolean => b.length >= 8 && b[0] === 0 && b[1] === code;

export type CaseKind = Expected['kind'] | 'destroyed';

/** Runs one case; resolves to null when the proxy behaved, else a description with the input. */
export async function runCase(
  target: FuzzTarget,
  c: FuzzCase,
  localAddress = '127.0.0.1',
): Promise<{ kind: CaseKind; failure: string | null }> {
  const expected = expectOutcome(c.stream, target.echoPort, c.ending === 'half-close');
  const started = performance.now();
  const socket = net.connect({ host: '127.0.0.1', port: target.port, localAddress });
  const seen = watch(socket);
  const describe = (what: string): string =>
    `${what}; expected ${expected.kind}; got ${hex(seen.bytes())}; stream ${hex(c.stream)} cuts ${c.cuts} ending ${c.ending} peer ${c.bindPeer}`;
  try {
    await once(socket, 'connect');
  } catch {
    return { kind: expected.kind, failure: describe('connect failed') };
  }
  if (c.ending === 'destroy') setTimeout(() => socket.destroy(), c.destroyAtMs);
  let from = 0;
  for (const cut of [...c.cuts, c.stream.length]) {
    if (socket.destroyed) break;
    socket.write(c.stream.subarray(from, cut));
    from = cut;
    if (cut < c.stream.length) await (c.gapMs === 0 ? new Promise((r) => setImmediate(r)) : sleep(c.gapMs));
  }
  if (c.ending === 'half-close' && !socket.destroyed) socket.end();
  if (c.ending === 'destroy') {
    await seen.closedAt;
    return { kind: 'destroyed', failure: null };
  }
  const deadline = FUZZ_CONFIG.handshakeTimeoutMs + SLACK_MS;
  try {
    return {
      kind: expected.kind,
      failure: await check(expected, c, target, socket, seen, started, deadline, describe),
    };
  } finally {
    socket.destroy();
  }
}

async function check(
  expected: Expected,
  c: FuzzCase,
  target: FuzzTarget,
  socket: net.Socket,
  seen: ReturnType<typeof watch>,
  started: number,
  deadline: number,
  describe: (what: string) => string,
): Promise<string | null> {
  if (expected.kind === 'silent-close') {
    const closed = await closedWithin(seen.closedAt, deadline);
    if (closed === null) return describe('not closed in time');
    return seen.bytes().length === 0 ? null : describe('bytes sent to a client that must get none');
  }
  if (expected.kind === 'hung-up') {
    const closed = await closedWithin(seen.closedAt, deadline);
    if (closed === null) return describe('a client that hung up was not closed in time');
    const got = seen.bytes();
    return got.length === 0 || isReply(got, 90) ? null : describe('want nothing, or a 90 sent before the FIN was seen');
  }
  if (expected.kind === 'refused' || expected.kind === 'timeout') {
    const closed = await closedWithin(seen.closedAt, deadline);
    if (closed === null) return describe('not closed within the handshake deadline');
    const got = seen.bytes();
    if (got.length !== 8 || !isReply(got, 91)) return describe('want exactly one 8-byte 91 reply');
    if (expected.kind === 'timeout' && closed - started < FUZZ_CONFIG.handshakeTimeoutMs - 50)
      return describe('timed out early');
    return null;
  }
  const payload = Buffer.from(expected.payload);
  const first = await seen.waitFor(8, deadline);
  if (!isReply(first, 90)) return describe('want 90');
  if (expected.command === 'connect') {
    if (first.readUInt16BE(2) !== target.echoPort || first.subarray(4, 8).join('.') !== '127.0.0.1')
      return describe('90 names the wrong address');
    const all = await seen.waitFor(8 + payload.length, deadline);
    if (!all.subarray(8).equals(payload)) return describe('bytes after the request not relayed verbatim');
    if (c.ending === 'wait') socket.end();
    return (await closedWithin(seen.closedAt, deadline)) === null ? describe('relay did not close after FIN') : null;
  }
  return checkBind(c, first, payload, seen, deadline, describe);
}

async function checkBind(
  c: FuzzCase,
  first: Buffer,
  payload: Buffer,
  seen: ReturnType<typeof watch>,
  deadline: number,
  describe: (what: string) => string,
): Promise<string | null> {
  const port = first.readUInt16BE(2);
  const host = first.subarray(4, 8).join('.');
  if (c.bindPeer === 'none') {
    const closed = await closedWithin(seen.closedAt, FUZZ_CONFIG.bindAcceptTimeoutMs + SLACK_MS);
    if (closed === null) return describe('BIND without a peer not closed after the accept timeout');
    const got = seen.bytes();
    return got.length === 16 && isReply(got.subarray(8), 91) ? null : describe('BIND timeout: want 90 then 91');
  }
  const localAddress = c.bindPeer === 'match' ? '127.0.0.1' : '127.0.0.2';
  const peer = net.connect({ host, port, localAddress, allowHalfOpen: true });
  peer.on('error', () => {});
  peer.on('data', (chunk: Buffer) => peer.write(chunk)); // the peer echoes, like the CONNECT target
  peer.on('end', () => peer.end());
  try {
    const second = await seen.waitFor(16, deadline);
    if (c.bindPeer === 'mismatch') {
      const closed = await closedWithin(seen.closedAt, deadline);
      return closed !== null && second.length === 16 && isReply(second.subarray(8), 91)
        ? null
        : describe('BIND peer from the wrong address: want 91 and close');
    }
    if (!isReply(second.subarray(8), 90)) return describe('BIND peer from the right address: want second 90');
    const all = await seen.waitFor(16 + payload.length, deadline);
    return all.subarray(16).equals(payload) ? null : describe('BIND: bytes after the request not relayed verbatim');
  } finally {
    peer.destroy();
  }
}

/** Runs cases `concurrency` at a time; returns counts by kind and the failures. */
export async function runCases(
  target: FuzzTarget,
  cases: readonly FuzzCase[],
  concurrency: number,
): Promise<{ counts: Record<string, number>; failures: string[] }> {
  const counts: Record<string, number> = {};
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const n = next++;
      // Many source addresses, none in 127.0.0.0/24 where other suites pick listening ports: a
      // long run must not wait for ephemeral ports in TIME_WAIT, nor take a port someone probed.
      const { kind, failure } = await runCase(target, cases[n]!, `127.1.${(n >> 8) % 4}.${1 + (n % 250)}`);
      counts[kind] = (counts[kind] ?? 0) + 1;
      if (failure !== null && failures.length < 20) failures.push(failure);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { counts, failures };
}

/** Waits (bounded) until the server holds no session and no handshake. */
export async function settled(proxy: TestProxy, ms = 5000): Promise<{ sessions: number; handshakes: number }> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline && (proxy.server.activeSessions > 0 || proxy.server.handshakesInProgress > 0))
    await sleep(20);
  return { sessions: proxy.server.activeSessions, handshakes: proxy.server.handshakesInProgress };
}
