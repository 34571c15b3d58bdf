// `socks4-fleet proxy --proxy-protocol` behind a load balancer, as a real process: every
// connection starts with a PROXY protocol header (v1 text or v2 binary, built by hand here), and
// the header's source address is the client for everything after it: `from.cidrs`, per-source
// limits, logs. The TCP peer is always 127.0.0.1, which no rule below names, so a proxy that
// ignored the header would refuse every session. A header that does not parse is not SOCKS: the
// connection is closed without a reply (a 91 would be the proxy talking to a load balancer's
// health check or a port scanner in a protocol it never agreed on).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startProxyProcess, type ProxyProcess } from '../helpers/fleet.ts';
import { proxyV1 as v1, proxyV2 as v2, proxyV2Mapped as v2mapped } from '../helpers/proxy-headers.ts';
import { connectRaw, socks4Request, startEchoServer, type RawExchange } from '../helpers/servers.ts';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
let proxy: ProxyProcess;
let dir: string;

before(async () => {
  echo = await startEchoServer();
  dir = mkdtempSync(path.join(tmpdir(), 'proxy-protocol-'));
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(
    file,
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: behind-lb, namespace: test}
spec:
  rules:
    - name: office
      action: Allow
      commands: [Connect]
      from: {cidrs: ["10.1.0.0/16"], userids: ["office"]}
      to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}
    - name: one-per-source
      action: Allow
      commands: [Connect]
      from: {userids: ["limited"]}
      to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}
      limits: {concurrentSessions: {max: 1, key: SourceIP}}
`,
  );
  proxy = await startProxyProcess(['--policy-file', file, '--proxy-protocol']);
});

after(async () => {
  await proxy?.kill();
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The proxy's log line for the session that ended with `client`:`clientPort` (bounded poll). */
async function sessionLog(client: string, clientPort: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    for (const line of proxy.log().split('\n')) {
      if (!line.includes('"msg":"session ')) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.client === client && entry.clientPort === clientPort) return entry;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no session log for ${client}:${clientPort}; log:\n${proxy.log()}`);
}

async function send(bytes: Buffer): Promise<{ raw: RawExchange; reply: Buffer; localPort: number }> {
  const raw = await connectRaw(proxy.port);
  const localPort = raw.socket.localPort!;
  raw.socket.write(bytes);
  return { raw, reply: await raw.read(8, 10_000), localPort };
}

test('a connection whose PROXY header does not parse is closed without a reply', async () => {
  const notAHeader: Array<[string, Buffer]> = [
    ['a SOCKS4 request with no header', socks4Request(1, echo.port, '127.0.0.1', 'office')],
    ['an HTTP request', Buffer.from('GET / HTTP/1.0\r\n\r\n')],
    ['a v1 line with a bad address', Buffer.from('PROXY TCP4 10.1.0.999 127.0.0.1 1 2\r\n')],
  ];
  for (const [name, bytes] of notAHeader) {
    const { raw, reply, localPort } = await send(bytes);
    await raw.closed;
    assert.equal(reply.length, 0, `${name}: got ${reply.toString('hex')} instead of a bare close`);
    const entry = await sessionLog('127.0.0.1', localPort);
    assert.deepEqual([entry.reply, entry.reason], [null, 'ProxyHeaderInvalid'], name);
  }
  // The legitimate client behind the balancer is still served.
  const { raw, reply } = await send(
    Buffer.concat([v1('10.1.2.3'), socks4Request(1, echo.port, '127.0.0.1', 'office')]),
  );
  assert.equal(reply[1], 90);
  raw.socket.destroy();
});

test("from.cidrs is matched on the header's source address (v1 and v2), not the TCP peer", async () => {
  for (const [name, header, source, port] of [
    ['v1', v1('10.1.2.3', 41_000), '10.1.2.3', 41_000],
    ['v2', v2('10.1.200.7', 41_001), '10.1.200.7', 41_001],
  ] as const) {
    const { raw, reply } = await send(
      Buffer.concat([header, socks4Request(1, echo.port, '127.0.0.1', 'office'), Buffer.from('hi')]),
    );
    assert.deepEqual([...reply], [0, 90, echo.port >> 8, echo.port & 0xff, 127, 0, 0, 1], name);
    assert.equal((await raw.read(2)).toString(), 'hi', `${name}: relayed`);
    raw.socket.destroy();
    const entry = await sessionLog(source, port);
    assert.equal(entry.rule, 'test/behind-lb/office', name);
  }
  // Outside 10.1.0.0/16 by its header: refused, whatever the TCP peer.
  const { raw, reply } = await send(
    Buffer.concat([v1('10.2.0.1', 41_002), socks4Request(1, echo.port, '127.0.0.1', 'office')]),
  );
  assert.deepEqual([...reply], [0, 91, 0, 0, 0, 0, 0, 0]);
  await raw.closed;
  assert.equal((await sessionLog('10.2.0.1', 41_002)).reason, 'NoRuleMatched');
});

test("per-source limits count the header's source address: one source is capped, another is not", async () => {
  const request = socks4Request(1, echo.port, '127.0.0.1', 'limited');
  const first = await send(Buffer.concat([v1('10.9.0.1', 42_000), request]));
  assert.equal(first.reply[1], 90);
  // The same source (through the same balancer, so the same TCP peer) is at its cap of 1...
  const again = await send(Buffer.concat([v1('10.9.0.1', 42_001), request]));
  assert.deepEqual([...again.reply], [0, 91, 0, 0, 0, 0, 0, 0]);
  await again.raw.closed;
  assert.equal((await sessionLog('10.9.0.1', 42_001)).reason, 'ConcurrencyLimited');
  // ...while another source behind the same balancer is served at the same moment.
  const other = await send(Buffer.concat([v2('10.9.0.2', 42_002), request]));
  assert.equal(other.reply[1], 90);
  first.raw.socket.destroy();
  other.raw.socket.destroy();
});

test('a v2 TCP6 source ::ffff:a.b.c.d is the IPv4 client a.b.c.d: logs, from.cidrs and the per-source cap', async () => {
  // Matched by the IPv4 rule and logged as the operator writes the address.
  const office = await send(
    Buffer.concat([v2mapped('10.1.3.4', 43_000), socks4Request(1, echo.port, '127.0.0.1', 'office')]),
  );
  assert.equal(office.reply[1], 90);
  office.raw.socket.destroy();
  assert.equal((await sessionLog('10.1.3.4', 43_000)).rule, 'test/behind-lb/office');
  // One client, whichever family its balancer used: a TCP4 session holds 10.9.0.5's one slot, so
  // the same client arriving as ::ffff:10.9.0.5 is over the cap.
  const request = socks4Request(1, echo.port, '127.0.0.1', 'limited');
  const first = await send(Buffer.concat([v1('10.9.0.5', 43_001), request]));
  assert.equal(first.reply[1], 90);
  const mapped = await send(Buffer.concat([v2mapped('10.9.0.5', 43_002), request]));
  assert.deepEqual([...mapped.reply], [0, 91, 0, 0, 0, 0, 0, 0]);
  await mapped.raw.closed;
  assert.equal((await sessionLog('10.9.0.5', 43_002)).reason, 'ConcurrencyLimited');
  first.raw.socket.destroy();
});
