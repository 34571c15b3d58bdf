// An exception no step of the session expected is the proxy's own bug: the client gets 91 at once
// (not a hang), the session ends with InternalError (not UpstreamUnreachable, which would send the
// operator chasing a healthy destination), the log line carries the error, and the proxy goes on
// serving. Known failures keep their own reasons.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import pino from 'pino';
import { isProxyFailure, Reason } from '../../src/errors.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { logEvents } from '../../src/telemetry/logging.ts';
import { connectUpstream } from '../../src/server/upstream.ts';
import {
  allowLoopbackPolicy,
  exchange,
  socks4Request,
  startEchoServer,
  startProxy,
  type Closable,
  type TestProxy,
} from '../helpers/servers.ts';

let echo: Closable;
let proxy: TestProxy;
/** Destination ports whose dial throws as a bug would; every other port is dialled for real. */
const buggyPort = 9;

before(async () => {
  echo = await startEchoServer();
  proxy = await startProxy(allowLoopbackPolicy, {
    dial: (ip, port, timeoutMs) => {
      if (port === buggyPort) throw new TypeError('dial bug: cannot read properties of undefined');
      return connectUpstream(ip, port, timeoutMs);
    },
  });
});

after(async () => {
  await proxy.close();
  await echo.close();
});

/** The SessionInfo of the next session to end (bounded: the exchange itself is bounded). */
function nextSessionEnd(): Promise<SessionInfo> {
  return new Promise((resolve) => {
    const onEnd = (message: unknown): void => {
      channels.sessionEnd.unsubscribe(onEnd);
      resolve(message as SessionInfo);
    };
    channels.sessionEnd.subscribe(onEnd);
  });
}

test('an unexpected exception is refused with 91 as InternalError, logged with the error', async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write: (chunk, _enc, done) => {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const unsubscribe = logEvents(logger);
  try {
    const ended = nextSessionEnd();
    const { reply, raw } = await exchange(proxy.port, socks4Request(1, buggyPort, '127.0.0.1'));
    assert.equal(reply.toString('hex'), '005b000000000000');
    await raw.closed;
    const session = await ended;
    assert.equal(session.reason, Reason.InternalError);
    assert.match(String(session.error?.message), /dial bug/);
    assert.equal(isProxyFailure(Reason.InternalError), true, 'a bug of ours makes the span ERROR');
    const line = lines
      .map((l) => JSON.parse(l) as { reason?: string; err?: { type: string; message: string; stack: string } })
      .find((l) => l.reason === Reason.InternalError);
    assert.ok(line, `no InternalError line in ${lines.join('')}`);
    assert.equal(line.err?.type, 'TypeError');
    assert.match(line.err?.stack ?? '', /dial bug/);
  } finally {
    unsubscribe();
  }
});

test('after the bug the proxy still serves, and a refused connect keeps its own reason', async () => {
  const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
  assert.equal(reply[1], 90);
  raw.socket.write('ping');
  assert.equal((await raw.read(4)).toString(), 'ping');
  raw.socket.destroy();

  // A port the kernel just handed out and nobody listens on any more.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const ended = nextSessionEnd();
  const refused = await exchange(proxy.port, socks4Request(1, closedPort, '127.0.0.1'));
  assert.equal(refused.reply[1], 91);
  const session = await ended;
  assert.equal(session.reason, Reason.UpstreamRefused);
  assert.equal(session.error ?? null, null);
});
