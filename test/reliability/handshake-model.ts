// An independent model of the SOCKS4/4a request grammar and of what the proxy must answer, for the
// hostile-handshake fuzzers (test/reliability/fuzz-handshake.test.ts and the soak run).
//
// The reference parser is deliberately a different formulation from src/protocol/parse-request.ts:
// a byte-at-a-time state machine that decides at the earliest byte that settles the verdict, read
// straight from the spec ("USERID ... terminated by a NULL") and src/errors.ts (255-byte limits,
// empty 4a name, DSTPORT 0). Agreement between the two on random and mutated input is the test.
import fc from 'fast-check';
import { canonicalizeHost } from '../../src/policy/hostname.ts';

export type RefReason =
  | 'BadVersion'
  | 'BadCommand'
  | 'ZeroPort'
  | 'UserIdTooLong'
  | 'HostnameTooLong'
  | 'EmptyHostname';

export type RefResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: RefReason }
  | {
      kind: 'ok';
      command: 'connect' | 'bind';
      port: number;
      ip: string;
      userId: Uint8Array;
      host: Uint8Array | null;
      bytesRead: number;
    };

/** The longest request the grammar allows: 8 fixed + 255 USERID + NUL + 255 name + NUL. */
export const MAX_REQUEST_BYTES = 8 + 255 + 1 + 255 + 1;

export function referenceParse(bytes: Uint8Array): RefResult {
  let state: 'vn' | 'cd' | 'porthi' | 'portlo' | 'ip' | 'user' | 'host' = 'vn';
  let command: 'connect' | 'bind' = 'connect';
  let port = 0;
  const ip: number[] = [];
  let userStart = 0;
  let hostStart = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    switch (state) {
      case 'vn':
        if (b !== 4) return { kind: 'invalid', reason: 'BadVersion' };
        state = 'cd';
        break;
      case 'cd':
        if (b !== 1 && b !== 2) return { kind: 'invalid', reason: 'BadCommand' };
        command = b === 1 ? 'connect' : 'bind';
        state = 'porthi';
        break;
      case 'porthi':
        port = b * 256;
        state = 'portlo';
        break;
      case 'portlo':
        port += b;
        if (port === 0) return { kind: 'invalid', reason: 'ZeroPort' };
        state = 'ip';
        break;
      case 'ip':
        ip.push(b);
        if (ip.length === 4) {
          state = 'user';
          userStart = i + 1;
        }
        break;
      case 'user': {
        if (b !== 0) {
          if (i - userStart + 1 > 255) return { kind: 'invalid', reason: 'UserIdTooLong' };
          break;
        }
        const userId = bytes.slice(userStart, i);
        // SOCKS4a: 0.0.0.x with x != 0 announces a name after the USERID.
        const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
        if (!is4a) return { kind: 'ok', command, port, ip: ip.join('.'), userId, host: null, bytesRead: i + 1 };
        state = 'host';
        hostStart = i + 1;
        break;
      }
      case 'host': {
        if (b !== 0) {
          if (i - hostStart + 1 > 255) return { kind: 'invalid', reason: 'HostnameTooLong' };
          break;
        }
        if (i === hostStart) return { kind: 'invalid', reason: 'EmptyHostname' };
        const userId = bytes.slice(userStart, hostStart - 1);
        return {
          kind: 'ok',
          command,
          port,
          ip: ip.join('.'),
          userId,
          host: bytes.slice(hostStart, i),
          bytesRead: i + 1,
        };
      }
    }
  }
  return { kind: 'incomplete' };
}

// ---------------------------------------------------------------------------------------------
// Generators: well-formed requests, then mutated, then followed by pipelined bytes.

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Names the fuzz resolver answers (everything else fails DNS): see `fuzzResolve`. */
export const RESOLVABLE = 'echo.test';

export function fuzzResolveAnswer(name: string): string | null {
  return name === RESOLVABLE || name.endsWith('.allowed.test') ? '127.0.0.1' : null;
}

const hostileText = fc.constantFrom(
  '',
  'alice',
  '*',
  'svc-*',
  '[a-z]?',
  '\n{"level":"fatal"}\n',
  '\x1b[31mred\x1b[0m',
  '\r\n',
  'x\u2028y',
  '127.1',
  '0x7f000001',
  'localhost',
  RESOLVABLE,
  'a.allowed.test',
  'ECHO.TEST',
  'echo.test.',
  '%s%n',
  '../..',
);

const nameBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: hostileText.map(utf8) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }).map(utf8) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }) }, // may hold NULs: the name ends early
  { weight: 1, arbitrary: fc.integer({ min: 240, max: 600 }).map((n) => new Uint8Array(n).fill(0x61)) },
);

const ipBytes = (echoIp: number[]): fc.Arbitrary<number[]> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(echoIp) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 255 }).map((x) => [0, 0, 0, x]) }, // 4a marker
    { weight: 1, arbitrary: fc.constant<number[]>([0, 0, 0, 0]) },
    { weight: 1, arbitrary: fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t): number[] => [...t]) },
  );

/** A request as the grammar lays it out, fields possibly out of range (VN, CD, port 0, long names). */
export function requestBytes(echoPort: number): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      vn: fc.oneof({ weight: 9, arbitrary: fc.constant(4) }, { weight: 1, arbitrary: fc.nat(255) }),
      cd: fc.oneof(
        { weight: 6, arbitrary: fc.constant(1) },
        { weight: 3, arbitrary: fc.constant(2) },
        { weight: 1, arbitrary: fc.nat(255) },
      ),
      port: fc.oneof(
        { weight: 6, arbitrary: fc.constant(echoPort) },
        { weight: 1, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.nat(0xffff) },
      ),
      ip: ipBytes([127, 0, 0, 1]),
      userId: nameBytes,
      host: nameBytes,
    })
    .map(({ vn, cd, port, ip, userId, host }) => {
      const is4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
      const head = [vn, cd, port >> 8, port & 0xff, ...ip];
      const parts = [Uint8Array.from(head), userId, Uint8Array.of(0)];
      if (is4a) parts.push(host, Uint8Array.of(0));
      return new Uint8Array(Buffer.concat(parts));
    });
}

type Mutation = { op: 'flip' | 'set' | 'insert' | 'delete' | 'truncate' | 'nul'; at: number; byte: number };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'nul'),
  at: fc.nat(),
  byte: fc.nat(255),
});

export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Array.from(bytes);
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = m.at % out.length;
    if (m.op === 'flip') out[at] = out[at]! ^ (1 << (m.byte % 8));
    else if (m.op === 'set') out[at] = m.byte;
    else if (m.op === 'insert') out.splice(at, 0, m.byte);
    else if (m.op === 'delete') out.splice(at, 1);
    else if (m.op === 'nul') out[at] = 0;
    else out = out.slice(0, at);
  }
  return Uint8Array.from(out);
}

/** What a hostile client sends: a (mutated) request, then pipelined bytes, or plain noise. */
export function clientStream(echoPort: number): fc.Arbitrary<Uint8Array> {
  const request = requestBytes(echoPort);
  const mutated = fc
    .tuple(
      request,
      fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }) },
      ),
    )
    .map(([bytes, ms]) => mutate(bytes, ms));
  const trailing = fc.oneof(
    { weight: 3, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }) },
    { weight: 2, arbitrary: request }, // a pipelined second request: it is payload, relayed as is
  );
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(mutated, trailing).map(([a, b]) => new Uint8Array(Buffer.concat([a, b]))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 700 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 700 }).map((b) => Uint8Array.from([4, 1, ...b])) },
  );
}

// ---------------------------------------------------------------------------------------------
// What the proxy must do with one stream, under the fuzz policy (test/reliability/session-fuzz.ts):
// CONNECT allowed to 127.0.0.1:<echo> only, BIND allowed for peer 127.0.0.1 only, names resolved
// by `fuzzResolveAnswer`.

export type Expected =
  | { kind: 'silent-close' } // no reply byte at all, connection closed
  | { kind: 'refused' } // exactly 8 bytes, VN 0, CD 91, then closed
  | { kind: 'timeout' } // incomplete request left open: 91 at the handshake deadline
  | { kind: 'hung-up' } // allowed, then FIN with nothing after the request: closed, granted or not
  | { kind: 'granted'; command: 'connect' | 'bind'; payload: Uint8Array };

export function expectOutcome(stream: Uint8Array, echoPort: number, clientEnds: boolean): Expected {
  const ref = referenceParse(stream);
  if (ref.kind === 'invalid') return ref.reason === 'BadVersion' ? { kind: 'silent-close' } : { kind: 'refused' };
  // A client that half-closes before its request is complete can never complete it.
  if (ref.kind === 'incomplete') return clientEnds ? { kind: 'silent-close' } : { kind: 'timeout' };
  // A 4a name is canonicalised before anything else (IDNA, case, root dot, addresses spelled as
  // names; tested on its own in test/policy/hostname.test.ts); the resolver sees only that form.
  const canonical = ref.host === null ? null : canonicalizeHost(Buffer.from(ref.host).toString('utf8'));
  if (canonical?.kind === 'invalid') return { kind: 'refused' };
  const dest =
    canonical === null ? ref.ip : canonical.kind === 'address' ? canonical.text : fuzzResolveAnswer(canonical.name);
  const allowed = dest === '127.0.0.1' && (ref.command === 'bind' || ref.port === echoPort);
  if (!allowed) return { kind: 'refused' };
  // A FIN with no payload before the reply is a hang-up: the session ends at once (its connect
  // aborted) unless it was granted first — a race the client cannot see, so either is right.
  const payload = stream.subarray(ref.bytesRead);
  if (clientEnds && payload.length === 0) return { kind: 'hung-up' };
  return { kind: 'granted', command: ref.command, payload: stream.subarray(ref.bytesRead) };
}
