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
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { READ_BUFFER_BYTES } from '../../src/server/pooled-reads.ts';
import { type BandwidthGate, relay } from '../../src/server/relay.ts';
import { drain, sha256, tcpPair } from '../helpers/bulk.ts';

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

/** Client ⇄ proxy ⇄ destination as a session has them, the proxy's two ends not yet relayed. */
async function fourEnds(
  t: TestContext,
): Promise<Record<'client' | 'proxyClient' | 'proxyUpstream' | 'destination', Socket>> {
  const front = await tcpPair();
  const back = await tcpPair();
  const ends = {
    client: front.dialled,
    proxyClient: front.accepted,
    proxyUpstream: back.dialled,
    destination: back.accepted,
  };
  t.after(() => {
    for (const socket of Object.values(ends)) socket.destroy();
  });
  ends.proxyUpstream.pause();
  return ends;
}

/** The client writes `payload` then a FIN, waiting for 'drain' when told to; `blocked` while it waits. */
function uploading(client: Socket, payload: Buffer): { readonly blocked: boolean; done: Promise<void> } {
  const state = { blocked: false, done: Promise.resolve() };
  state.done = (async () => {
    for (let written = 0; written < payload.length && !client.destroyed; written += 65_536) {
      if (client.write(payload.subarray(written, written + 65_536))) continue;
      state.blocked = true;
      await once(client, 'drain');
      state.blocked = false;
    }
    client.end();
  })();
  return state;
}

/** Polls `check` every 10 ms, at most `ms`; true as soon as it holds. */
async function until(check: () => boolean, ms = 10_000): Promise<boolean> {
  for (let i = 0; i < ms / 10 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return check();
}

test('bytes written before the relay past the high-water mark, then a stall: the source is still paused', {
  timeout: 60_000,
}, async (t) => {
  const { client, proxyClient, proxyUpstream, destination } = await fourEnds(t);
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
  const upload = uploading(client, payload);
  const bound = READ_BUFFER_BYTES + proxyUpstream.writableHighWaterMark;
  const holding = (): number => sockets.upstream.writableLength;
  // The destination reads nothing: the client is held, and the proxy keeps no more than its buffers.
  assert.ok(
    await until(() => (upload.blocked && sockets.client.isPaused()) || holding() > bound),
    'the client never stalled',
  );
  assert.ok(holding() <= bound, `the proxy holds ${holding()} bytes (> ${bound}) for a stalled destination`);
  // Then the destination reads: everything arrives, in order, and the client finishes.
  const rest = await within(drain(destination), 20_000, 'the client never went on after the destination read');
  await upload.done;
  assert.equal(sha256(Buffer.concat(received)), sha256(early), 'the early bytes arrive first, intact');
  assert.deepEqual(rest, { digest: sha256(payload), length: payload.length });
});

test("the gate's hold ending while the destination owes a drain keeps the source paused", {
  timeout: 60_000,
}, async (t) => {
  const { client, proxyClient, proxyUpstream, destination } = await fourEnds(t);
  // Every chunk waits 1 ms for the gate: the chunk that fills the destination's buffers is written
  // by the gate's timer, which then ends its own hold while the drain's hold has just begun.
  let taken = 0;
  const gate: BandwidthGate = {
    take: () => {
      taken++;
      return 1;
    },
  };
  const sockets = relay(proxyClient, proxyUpstream, {
    idleMs: 0,
    gate,
    counters: { bytesFromClient: 0, bytesToClient: 0 },
    onClose: () => {},
  });
  const payload = randomBytes(48 << 20);
  const upload = uploading(client, payload);
  const bound = READ_BUFFER_BYTES + proxyUpstream.writableHighWaterMark;
  const holding = (): number => sockets.upstream.writableLength;
  // The destination reads nothing: the client is held, and the proxy keeps no more than its buffers.
  assert.ok(
    await until(
      () => (upload.blocked && sockets.upstream.writableNeedDrain && sockets.client.isPaused()) || holding() > bound,
    ),
    'the client never stalled',
  );
  // A bounded watch (1 s): a source the gate's release resumed goes on filling the proxy's memory.
  assert.equal(await until(() => holding() > bound, 1000), false, `the proxy holds ${holding()} bytes (> ${bound})`);
  assert.ok(taken > 0, 'the gate saw the chunks');
  // Then the destination reads: everything arrives, in order, and the client finishes.
  const received = await within(drain(destination), 30_000, 'the client never went on after the destination read');
  await upload.done;
  assert.deepEqual(received, { digest: sha256(payload), length: payload.length });
});
