// BIND through the real proxy: the `socks` npm client end to end, and raw sockets for the
// peer-address check the client library cannot provoke.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { SocksClient } from 'socks';
import { connectRaw, socks4Request, startProxy, type TestProxy } from '../helpers/servers.ts';
import { exchangeBothWays } from '../helpers/bulk.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: bind}
spec:
  rules:
    - name: bind-from-loopback
      action: Allow
      commands: [Bind]
      to: {cidrs: ["127.0.0.0/8"]}
`;

let proxy: TestProxy;
before(async () => {
  proxy = await startProxy(policy, { config: { bindAcceptTimeoutMs: 2000 } });
});
after(() => proxy.close());

type Endpoint = { host: string; port: number };

/** A BIND through the proxy with the `socks` client: the first reply (bound), then the second. */
function bindWithSocksClient(): {
  bound: Promise<[{ remoteHost: Endpoint }]>;
  established: Promise<[{ socket: net.Socket; remoteHost: Endpoint }]>;
} {
  const client = new SocksClient({
    proxy: { host: '127.0.0.1', port: proxy.port, type: 4 },
    command: 'bind',
    destination: { host: '127.0.0.1', port: 8021 },
  });
  const bound = once(client, 'bound') as Promise<[{ remoteHost: Endpoint }]>;
  const established = once(client, 'established') as Promise<[{ socket: net.Socket; remoteHost: Endpoint }]>;
  client.connect();
  return { bound, established };
}

test('socks client BIND: bound address, inbound peer, data both ways', async () => {
  const { bound, established } = bindWithSocksClient();
  const [{ remoteHost }] = await bound;
  assert.equal(remoteHost.host, '127.0.0.1'); // a concrete address: no 0.0.0.0 substitution needed
  assert.ok(remoteHost.port > 0);

  // The application server connects to the address the first reply announced.
  const peer = net.connect({ host: remoteHost.host, port: remoteHost.port });
  await once(peer, 'connect');
  const [{ socket, remoteHost: peerSeen }] = await established;
  assert.equal(peerSeen.host, '127.0.0.1');
  assert.equal(peerSeen.port, peer.localPort);

  peer.write('from-peer');
  const [fromPeer] = (await once(socket, 'data')) as [Buffer];
  assert.equal(fromPeer.toString(), 'from-peer');
  socket.write('from-client');
  const [fromClient] = (await once(peer, 'data')) as [Buffer];
  assert.equal(fromClient.toString(), 'from-client');
  socket.destroy();
  peer.destroy();
});

test('BIND carries bulk data both ways intact, through the switch to pooled reads', async () => {
  const { bound, established } = bindWithSocksClient();
  const [{ remoteHost }] = await bound;
  const peer = net.connect({ host: remoteHost.host, port: remoteHost.port, allowHalfOpen: true });
  const [{ socket }] = await established;
  await exchangeBothWays(socket, peer, 4 << 20);
  socket.destroy();
  peer.destroy();
});

test('BIND: a peer from another address than DSTIP gets 91 and both are closed', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(socks4Request(2, 8021, '127.0.0.1'));
  const first = await raw.read(8);
  assert.equal(first[1], 90);
  const port = first.readUInt16BE(2);
  const address = [...first.subarray(4, 8)].join('.');
  // 127.0.0.2 is still loopback on Linux, but it is not the DSTIP the client named.
  const intruder = net.connect({ host: address, port, localAddress: '127.0.0.2' });
  intruder.on('error', () => {});
  const intruderClosed = once(intruder, 'close');
  const second = await raw.read(8);
  assert.deepEqual([...second], [0, 91, 0, 0, 0, 0, 0, 0]);
  await raw.closed;
  await intruderClosed;
});

test('BIND: no inbound connection before the deadline → 91 and close', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(socks4Request(2, 8021, '127.0.0.1'));
  assert.equal((await raw.read(8))[1], 90);
  const second = await raw.read(8, 5000);
  assert.deepEqual([...second], [0, 91, 0, 0, 0, 0, 0, 0]);
  await raw.closed;
});

test('BIND refused by policy for a destination outside the rule', async () => {
  const raw = await connectRaw(proxy.port);
  raw.socket.write(socks4Request(2, 8021, '10.1.2.3'));
  assert.deepEqual([...(await raw.read(8))], [0, 91, 0, 0, 0, 0, 0, 0]);
  await raw.closed;
});
