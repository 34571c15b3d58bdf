// A session's local end (the address and port the client reached: tracing's server.address, the
// ident query, BIND's listener) is the listener's own when it listens on one address, and asked
// from the socket when it listens on a wildcard, where each client may have reached another one.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { allowLoopbackPolicy, startProxy } from '../helpers/servers.ts';

/** The local end of the next session the proxy starts, read when it starts (as tracing does). */
async function localEndSeen(proxyPort: number, connectTo: string): Promise<{ address: string; port: number }> {
  let seen: { address: string; port: number } | null = null;
  const onStart = (message: unknown): void => {
    const s = message as SessionInfo;
    seen = { address: s.localAddress, port: s.localPort };
  };
  channels.sessionStart.subscribe(onStart);
  try {
    const socket = net.connect({ host: connectTo, port: proxyPort });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(Buffer.from([5])); // not SOCKS4: closed at once
    await once(socket, 'close');
  } finally {
    channels.sessionStart.unsubscribe(onStart);
  }
  assert.ok(seen !== null, 'no session started');
  return seen;
}

for (const [listen, connectTo] of [
  ['127.0.0.1', '127.0.0.1'],
  ['127.0.0.3', '127.0.0.3'],
  ['0.0.0.0', '127.0.0.2'],
  ['0.0.0.0', '127.0.0.1'],
] as const) {
  test(`listening on ${listen}, a client that reached ${connectTo} has that local end`, async () => {
    const proxy = await startProxy(allowLoopbackPolicy, { host: listen });
    try {
      assert.deepEqual(await localEndSeen(proxy.port, connectTo), { address: connectTo, port: proxy.port });
    } finally {
      await proxy.close();
    }
  });
}
