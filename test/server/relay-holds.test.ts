// The relay's holds on its source, where something else wrote to the destination first: the
// session writes the client's early payload before the relay starts, and a write the kernel did
// not take at once brings a 'drain' the relay never waited for. That drain must not count as a
// release: when the destination then stalls, the source is paused, the proxy holds no more than
// its buffers, and it goes on once the destination reads. Checked on the relay itself: through a
// session the early payload is at most one 64 KiB read, written to a fresh connection whose kernel
// buffers take it at once (measured: 65,522 bytes, write() true), so no such drain comes there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import { test } from 'node:test';
import { READ_BUFFER_BYTES } from '../../src/server/pooled-reads.ts';
import { relay } from '../../src/server/relay.ts';
import { drain, sha256 } from '../helpers/bulk.ts';

/** A connected pair: the end a server accepted (paused, as the proxy's are) and the dialling end. */
async function tcpPair(): Promise<{ accepted: Socket; dialled: Socket }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const dialled = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [Socket];
  await once(dialled, 'connect');
  server.close();
  return { accepted, dialled };
}

/** `promise`, or a failure naming what did not happen within `ms`: a broken hold fails, not hangs. */
async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 10 ms, at most `ms`; true as soon as it holds. */
async function until(check: () => boolean, ms = 10_000): Promise<boolean> {
  for (let i = 0; i < ms / 10 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return check();
}

test('bytes written before the relay past the high-water mark, then a stall: the source is still paused', {
  timeout: 60_000,
}, async (t) => {
  const front = await tcpPair(); // client ⇄ proxy
  const back = await tcpPair(); // proxy ⇄ destination
  const [client, proxyClient, proxyUpstream, destination] = [
    front.dialled,
    front.accepted,
    back.dialled,
    back.accepted,
  ];
  t.after(() => {
    for (const socket of [client, proxyClient, proxyUpstream, destination]) socket.destroy();
  });
  proxyUpstream.pause();
  // The early payload, as the session writes it, to a destination not reading yet: more than the
  // kernel takes at once, so the write is over the mark and a 'drain' is owed.
  const early = randomBytes(16 << 20);
  assert.equal(proxyUpstream.write(early), false, 'the early write is over the mark');
  const sockets = relay(proxyClient, proxyUpstream, {
    idleMs: 0,
    gate: null,
    counters: { bytesFromClient: 0, bytesToClient: 0 },
    onClose: () => {},
  });
  // The destination reads the early bytes, then stops: the owed 'drain' comes before the client
  // has sent anything.
  const received: Buffer[] = [];
  let length = 0;
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      received.push(chunk);
      length += chunk.length;
      if (length < early.length) return;
      destination.pause();
      destination.removeListener('data', onData);
      resolve();
    };
    destination.on('data', onData).resume();
  });
  assert.ok(await until(() => !proxyUpstream.writableNeedDrain), "the early write's drain never came");
  await new Promise((resolve) => setImmediate(resolve));

  const payload = randomBytes(48 << 20);
  let blocked = false;
  let written = 0;
  const writing = (async () => {
    for (; written < payload.length && !client.destroyed; written += 65_536) {
      if (client.write(payload.subarray(written, written + 65_536))) continue;
      blocked = true;
      await once(client, 'drain');
      blocked = false;
    }
    client.end();
  })();
  const bound = READ_BUFFER_BYTES + proxyUpstream.writableHighWaterMark;
  const holding = (): number => sockets.upstream.writableLength;
  // The destination reads nothing: the client is held, and the proxy keeps no more than its buffers.
  assert.ok(await until(() => (blocked && sockets.client.isPaused()) || holding() > bound), 'the client never stalled');
  assert.ok(holding() <= bound, `the proxy holds ${holding()} bytes (> ${bound}) for a stalled destination`);
  // Then the destination reads: everything arrives, in order, and the client finishes.
  const rest = await within(drain(destination), 20_000, 'the client never went on after the destination read');
  await writing;
  assert.equal(sha256(Buffer.concat(received)), sha256(early), 'the early bytes arrive first, intact');
  assert.deepEqual(rest, { digest: sha256(payload), length: payload.length });
});
