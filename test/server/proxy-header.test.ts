// The session's PROXY protocol handling in this process (proxy-protocol-session.test.ts runs the
// real CLI, whose lines Stryker's per-test coverage cannot see): a header and request that arrive
// in pieces, the request and first payload in the header's packet, a LOCAL header (the balancer's
// own health check: the TCP peer stays the client), and a header that does not parse (a bare
// close). What a session decided is read from its end event: client address and port, reply, reason.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { proxyV1 as v1, proxyV2Mapped as v2mapped } from '../helpers/proxy-headers.ts';
import { connectRaw, socks4Request, startEchoServer, startProxy, type TestProxy } from '../helpers/servers.ts';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let proxy: TestProxy;
const ended: SessionInfo[] = [];
const onEnd = (message: unknown): void => void ended.push({ ...(message as SessionInfo) });

before(async () => {
  echo = await startEchoServer();
  // The TCP peer is always 127.0.0.1: only the LOCAL rule names it, and only for USERID lb-check.
  proxy = await startProxy(
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: lb}
spec:
  rules:
    - {name: office, action: Allow, commands: [Connect], from: {cidrs: ["10.1.0.0/16"]}, to: {cidrs: ["127.0.0.1/32"]}}
    - {name: health, action: Allow, commands: [Connect], from: {cidrs: ["127.0.0.1/32"], userids: [lb-check]}, to: {cidrs: ["127.0.0.1/32"]}}
`,
    { config: { proxyProtocol: true } },
  );
  channels.sessionEnd.subscribe(onEnd);
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  await proxy.close();
  await echo.close();
});

/** The end event of the session the client on local port `port` had (bounded poll). */
async function endOf(port: number): Promise<SessionInfo> {
  for (let i = 0; i < 500; i++) {
    const found = ended.find((s) => s.clientPort === port);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no session with client port ${port} ended within 5 s`);
}

test('a header and request arriving a byte at a time are put together: served as the header source', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.setNoDelay(true);
  for (const byte of Buffer.concat([v1('10.1.2.3', 41_000), socks4Request(1, echo.port, '127.0.0.1', 'office')])) {
    raw.socket.write(Buffer.from([byte]));
    await new Promise((resolve) => setTimeout(resolve, 1)); // separate packets, so separate reads
  }
  assert.deepEqual([...(await raw.read(8))], [0, 90, echo.port >> 8, echo.port & 0xff, 127, 0, 0, 1]);
  raw.socket.write('ping');
  assert.equal((await raw.read(4)).toString(), 'ping');
  raw.socket.destroy();
  const session = await endOf(41_000);
  assert.deepEqual([session.clientAddress, session.ruleId], ['10.1.2.3', 'default/lb/office']);
});

test('header, request and first payload in one packet: the payload is relayed, the source is the header', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(
    Buffer.concat([v2mapped('10.1.3.4', 41_001), socks4Request(1, echo.port, '127.0.0.1', 'x'), Buffer.from('early')]),
  );
  assert.equal((await raw.read(8))[1], 90);
  assert.equal((await raw.read(5)).toString(), 'early');
  raw.socket.destroy();
  const session = await endOf(41_001);
  assert.equal(session.clientAddress, '10.1.3.4', '::ffff:10.1.3.4 is the IPv4 client');
});

test("a LOCAL header (the balancer's own check) leaves the TCP peer as the client", async () => {
  const raw = await connectRaw(proxy.port);
  const port = raw.socket.localPort!;
  raw.socket.write(
    Buffer.concat([Buffer.from('PROXY UNKNOWN\r\n'), socks4Request(1, echo.port, '127.0.0.1', 'lb-check')]),
  );
  assert.equal((await raw.read(8))[1], 90);
  raw.socket.destroy();
  const session = await endOf(port);
  assert.deepEqual([session.clientAddress, session.ruleId], ['127.0.0.1', 'default/lb/health']);
});

test('a header that does not parse gets a bare close; the request after a good one still gets its 91', async () => {
  const bad = await connectRaw(proxy.port);
  const port = bad.socket.localPort!;
  bad.socket.write('PROXY TCP4 10.1.0.999 127.0.0.1 1 2\r\n');
  await bad.closed;
  assert.equal((await bad.read(8)).length, 0, 'no reply to a load balancer in a protocol it never spoke');
  const session = await endOf(port);
  assert.deepEqual([session.replyCode, session.reason], [null, 'ProxyHeaderInvalid']);
  // A good header, then a request no rule allows (10.2.0.1 is outside the office): SOCKS's 91.
  const refused = await connectRaw(proxy.port);
  refused.socket.write(Buffer.concat([v1('10.2.0.1', 41_002), socks4Request(1, echo.port, '127.0.0.1', 'x')]));
  assert.deepEqual([...(await refused.read(8))], [0, 91, 0, 0, 0, 0, 0, 0]);
  await refused.closed;
  assert.deepEqual([(await endOf(41_002)).reason], ['NoRuleMatched']);
});
