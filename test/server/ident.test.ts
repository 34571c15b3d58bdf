import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import {
  formatIdentQuery,
  identOutcome,
  parseIdentReply,
  queryIdent,
  type IdentMode,
  type IdentResult,
} from '../../src/server/ident.ts';
import { SILENT, startIdentd, type IdentdOptions } from '../helpers/identd.ts';

// The SOCKS client's source port and our listening port, as the session would pass them.
const CLIENT_PORT = 51234;
const SERVER_PORT = 1080;

async function withIdentd(t: { after(fn: () => unknown): void }, respond: IdentdOptions['respond'], host?: string) {
  const identd = await startIdentd(host === undefined ? { respond } : { respond, host });
  t.after(() => identd.close());
  const ask = (over: { localAddress?: string; timeoutMs?: number } = {}) =>
    queryIdent({
      localAddress: over.localAddress ?? '127.0.0.1',
      clientAddress: identd.host,
      clientPort: CLIENT_PORT,
      serverPort: SERVER_PORT,
      identPort: identd.port,
      timeoutMs: over.timeoutMs ?? 2000,
    });
  return { identd, ask };
}

async function findClosedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

describe('queryIdent against a real identd', { timeout: 10_000 }, () => {
  it('returns the user the identd names, and sends exactly "<clientPort> , <serverPort>\\r\\n"', async (t) => {
    const { identd, ask } = await withIdentd(t, (c, s) => `${c} , ${s} : USERID : UNIX : alice`);
    assert.deepEqual(await ask(), { kind: 'user', user: 'alice', os: 'UNIX' });
    assert.equal(identd.queries.length, 1);
    assert.equal(identd.queries[0]?.line, `${CLIENT_PORT} , ${SERVER_PORT}\r\n`);
    await identd.queries[0]?.closed;
  });

  it('connects from the given local address', async (t) => {
    const { identd, ask } = await withIdentd(t, (c, s) => `${c},${s}:USERID:UNIX:bob`, '127.0.0.3');
    assert.deepEqual(await ask({ localAddress: '127.0.0.2' }), { kind: 'user', user: 'bob', os: 'UNIX' });
    assert.equal(identd.queries[0]?.remoteAddress, '127.0.0.2');
    assert.deepEqual(await ask({ localAddress: '::ffff:127.0.0.4' }), { kind: 'user', user: 'bob', os: 'UNIX' });
    assert.equal(identd.queries[1]?.remoteAddress, '127.0.0.4');
  });

  it('reports a different user as such (the outcome decides it is a mismatch)', async (t) => {
    const { ask } = await withIdentd(t, (c, s) => `${c} , ${s} : USERID : UNIX , UTF-8 : mallory`);
    const result = await ask();
    assert.deepEqual(result, { kind: 'user', user: 'mallory', os: 'UNIX' });
    assert.equal(identOutcome(result, 'alice', 'Optional'), 'IdentMismatch');
  });

  it('returns an ERROR reply as an error', async (t) => {
    const { ask } = await withIdentd(t, (c, s) => `${c} , ${s} : ERROR : NO-USER`);
    assert.deepEqual(await ask(), { kind: 'error', error: 'NO-USER' });
  });

  it('reports a closed port as unreachable', async () => {
    const port = await findClosedPort();
    const result = await queryIdent({
      localAddress: '127.0.0.1',
      clientAddress: '127.0.0.1',
      clientPort: CLIENT_PORT,
      serverPort: SERVER_PORT,
      identPort: port,
      timeoutMs: 2000,
    });
    assert.deepEqual(result, { kind: 'unreachable', detail: 'ECONNREFUSED' });
  });

  it('gives up after timeoutMs on an identd that never answers, and closes its socket', async (t) => {
    const { identd, ask } = await withIdentd(t, () => SILENT);
    const started = performance.now();
    assert.deepEqual(await ask({ timeoutMs: 150 }), { kind: 'unreachable', detail: 'timeout' });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 140 && elapsed < 1500, `took ${elapsed} ms`);
    // The identd never closes this connection itself: only our side can have closed it.
    await identd.queries[0]?.closed;
  });

  it('reports an identd that closes without answering as unreachable', async (t) => {
    const { ask } = await withIdentd(t, () => null);
    assert.deepEqual(await ask(), { kind: 'unreachable', detail: 'closed without reply' });
  });

  it('reports malformed, foreign and over-long replies as unreachable', async (t) => {
    const cases: Array<[string, (c: number, s: number) => string, string]> = [
      ['garbage', () => 'hello there', 'malformed reply'],
      ['unknown type', (c, s) => `${c} , ${s} : MAYBE : alice`, 'malformed reply'],
      ['other ports', (c, s) => `${c + 1} , ${s} : USERID : UNIX : alice`, 'reply for another port pair'],
      ['no end of line in 1000 bytes', (c, s) => `${c} , ${s} : USERID : UNIX : ${'a'.repeat(1200)}`, 'reply too long'],
    ];
    for (const [name, reply, detail] of cases) {
      const { ask } = await withIdentd(t, reply);
      assert.deepEqual(await ask(), { kind: 'unreachable', detail }, name);
    }
  });

  it('accepts a user id of 512 bytes (RFC 1413 minimum)', async (t) => {
    const user = 'u'.repeat(512);
    const { ask } = await withIdentd(t, (c, s) => `${c} , ${s} : USERID : OTHER : ${user}`);
    assert.deepEqual(await ask(), { kind: 'user', user, os: 'OTHER' });
  });

  it('resolves as aborted when the signal fires, and closes its socket', async (t) => {
    const { identd } = await withIdentd(t, () => SILENT);
    const controller = new AbortController();
    const pending = queryIdent({
      clientAddress: identd.host,
      clientPort: CLIENT_PORT,
      serverPort: SERVER_PORT,
      identPort: identd.port,
      signal: controller.signal,
    });
    // Abort once the identd has the query, so the socket is surely open.
    for (let i = 0; i < 200 && identd.queries.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(identd.queries.length, 1);
    controller.abort();
    assert.deepEqual(await pending, { kind: 'unreachable', detail: 'aborted' });
    await identd.queries[0]?.closed;
  });
});

describe('parseIdentReply', () => {
  const table: Array<[string, IdentResult]> = [
    ['51234 , 1080 : USERID : UNIX : alice', { kind: 'user', user: 'alice', os: 'UNIX' }],
    ['51234,1080:USERID:UNIX:alice', { kind: 'user', user: 'alice', os: 'UNIX' }],
    ['  51234 ,\t1080 : userid : UNIX,US-ASCII : alice', { kind: 'user', user: 'alice', os: 'UNIX' }],
    // RFC 1413: everything after the OS colon is the user id, colons and inner spaces included.
    ['51234 , 1080 : USERID : OTHER : a:b c ', { kind: 'user', user: 'a:b c ', os: 'OTHER' }],
    ['51234 , 1080 : USERID : UNIX : josé', { kind: 'user', user: 'josé', os: 'UNIX' }],
    ['51234 , 1080 : ERROR : HIDDEN-USER ', { kind: 'error', error: 'HIDDEN-USER' }],
    ['51234 , 1080 : ERROR : X-CUSTOM', { kind: 'error', error: 'X-CUSTOM' }],
    ['51234 , 1080 : ERROR :', { kind: 'unreachable', detail: 'malformed reply' }],
    ['51234 , 1080 : USERID : UNIX :', { kind: 'unreachable', detail: 'malformed reply' }],
    ['51234 , 1080 : USERID : UNIX', { kind: 'unreachable', detail: 'malformed reply' }],
    ['51234 , 1080 : USERID :  : alice', { kind: 'unreachable', detail: 'malformed reply' }],
    ['51234 , 1080', { kind: 'unreachable', detail: 'malformed reply' }],
    ['1080 , 51234 : USERID : UNIX : alice', { kind: 'unreachable', detail: 'reply for another port pair' }],
    ['', { kind: 'unreachable', detail: 'malformed reply' }],
  ];
  for (const [line, expected] of table) {
    it(JSON.stringify(line), () => assert.deepEqual(parseIdentReply(line, CLIENT_PORT, SERVER_PORT), expected));
  }

  it('formats the query with the port on the client host first', () => {
    assert.equal(formatIdentQuery(CLIENT_PORT, SERVER_PORT), '51234 , 1080\r\n');
  });
});

describe('identOutcome', () => {
  const alice: IdentResult = { kind: 'user', user: 'alice', os: 'UNIX' };
  const bob: IdentResult = { kind: 'user', user: 'bob', os: 'UNIX' };
  const error: IdentResult = { kind: 'error', error: 'NO-USER' };
  const down: IdentResult = { kind: 'unreachable', detail: 'timeout' };
  const table: Array<[IdentResult, IdentMode, string]> = [
    [alice, 'Optional', 'ok'],
    [alice, 'Required', 'ok'],
    [bob, 'Optional', 'IdentMismatch'],
    [bob, 'Required', 'IdentMismatch'],
    [error, 'Optional', 'ok'],
    [error, 'Required', 'IdentUnreachable'],
    [down, 'Optional', 'ok'],
    [down, 'Required', 'IdentUnreachable'],
  ];
  for (const [result, mode, expected] of table) {
    it(`${result.kind}${result.kind === 'user' ? ` ${result.user}` : ''} + ${mode} → ${expected}`, () => {
      assert.equal(identOutcome(result, 'alice', mode), expected);
    });
  }

  it('compares the user id exactly (case and spacing matter)', () => {
    assert.equal(identOutcome({ kind: 'user', user: 'Alice', os: 'UNIX' }, 'alice', 'Required'), 'IdentMismatch');
    assert.equal(identOutcome({ kind: 'user', user: 'alice ', os: 'UNIX' }, 'alice', 'Required'), 'IdentMismatch');
  });
});
