// The relay on real loopback TCP sockets: what goes in one side comes out the other, in order and
// intact, both ways at once, across many sessions sharing the one read buffer, under backpressure
// and a bandwidth gate, with half-close passed on — on Node's read path, on the pooled one, and
// across the switch from one to the other that bulk data brings.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { relay, type BandwidthGate, type RelayCounters } from '../../src/server/relay.ts';
import { READ_BUFFER_BYTES } from '../../src/server/pooled-reads.ts';
import { drain, exchangeBothWays, sha256, tcpPair } from '../helpers/bulk.ts';

/**
 * Client ⇄ proxy ⇄ upstream, as a session has them: `client` and `upstream` are the outer ends;
 * the relay joins the proxy's accepted client socket and its dialled upstream socket.
 */
async function relayed(
  options: { gate?: BandwidthGate | null; beforeRelay?: (proxyClient: Socket, client: Socket) => Promise<void> } = {},
) {
  const front = await tcpPair();
  const back = await tcpPair();
  const proxyClient = front.accepted;
  const proxyUpstream = back.dialled;
  proxyUpstream.pause();
  await options.beforeRelay?.(proxyClient, front.dialled);
  const counters: RelayCounters = { bytesFromClient: 0, bytesToClient: 0 };
  let closed!: () => void;
  const ended = new Promise<void>((resolve) => (closed = resolve));
  const sockets = relay(proxyClient, proxyUpstream, {
    idleMs: 0,
    gate: options.gate ?? null,
    counters,
    onClose: () => closed(),
  });
  return { client: front.dialled, upstream: back.accepted, sockets, proxyClient, proxyUpstream, counters, ended };
}

test('relays 8 MiB each way at once, intact across the switch to pooled reads, and counts the bytes', async () => {
  const { client, upstream, sockets, proxyClient, proxyUpstream, counters, ended } = await relayed();
  const sent = await exchangeBothWays(client, upstream, 8 << 20);
  assert.notEqual(sockets.client, proxyClient, 'bulk data moved the accepted client socket to pooled reads');
  assert.notEqual(sockets.upstream, proxyUpstream, 'and the dialled upstream socket');
  await ended;
  assert.deepEqual(counters, { bytesFromClient: sent.aToB, bytesToClient: sent.bToA });
});

test("a session trading small messages stays on Node's read path", async () => {
  const { client, upstream, sockets, proxyClient, proxyUpstream, ended } = await relayed();
  upstream.on('data', (chunk: Buffer) => upstream.write(chunk)).resume(); // echo
  for (let i = 0; i < 20; i++) {
    const echoed = once(client, 'data');
    client.write(randomBytes(512));
    await echoed;
  }
  assert.equal(sockets.client, proxyClient);
  assert.equal(sockets.upstream, proxyUpstream);
  client.end();
  upstream.end();
  await ended;
});

test('twenty sessions at once share the read buffer without mixing their bytes', async () => {
  const sessions = await Promise.all(Array.from({ length: 20 }, () => relayed()));
  await Promise.all(
    sessions.map(async ({ client, upstream, ended }) => {
      const up = randomBytes(512 * 1024 + Math.floor(Math.random() * 4096));
      const down = randomBytes(512 * 1024 + Math.floor(Math.random() * 4096));
      const atUpstream = drain(upstream);
      const atClient = drain(client);
      // Written in small pieces so reads from all sessions interleave.
      for (let at = 0; at < up.length; at += 10_000) client.write(up.subarray(at, at + 10_000));
      client.end();
      upstream.end(down);
      assert.equal((await atUpstream).digest, sha256(up));
      assert.equal((await atClient).digest, sha256(down));
      await ended;
    }),
  );
});

test("a destination that stops reading stops the source instead of filling the proxy's memory", async (t) => {
  const { client, upstream, sockets, ended } = await relayed();
  // A failed check must end the file with its message, not leave 32 MiB in flight holding it open.
  t.after(() => {
    for (const socket of [client, upstream, sockets.client, sockets.upstream]) socket.destroy();
  });
  upstream.pause(); // the destination takes nothing for now
  const payload = randomBytes(32 << 20);
  let written = 0;
  let blocked = false;
  const writer = (async () => {
    while (written < payload.length) {
      const ok = client.write(payload.subarray(written, written + 65_536));
      written += 65_536;
      if (ok) continue;
      blocked = true;
      await once(client, 'drain');
      blocked = false;
    }
    client.end();
  })();
  // Until the stall is real, not for a fixed time (a slow machine might not have filled anything
  // yet): the relay has paused its source and the client's own writes are held back.
  for (let i = 0; i < 1000 && !(blocked && sockets.client.isPaused()); i++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(sockets.client.isPaused(), 'the relay paused the client socket for the stalled destination');
  // At most one read past the socket's high-water mark: then the source is paused.
  const bound = READ_BUFFER_BYTES + sockets.upstream.writableHighWaterMark;
  assert.ok(
    sockets.upstream.writableLength <= bound,
    `proxy holds ${sockets.upstream.writableLength} bytes (> ${bound}) for a stalled destination`,
  );
  assert.ok(blocked && written < payload.length, 'the client was held back');
  const received = drain(upstream);
  await writer;
  assert.equal((await received).digest, sha256(payload));
  upstream.end();
  await ended;
});

test('chunks held back by the bandwidth gate arrive intact and in order, both ways at once', async () => {
  let calls = 0;
  const gate: BandwidthGate = { take: () => (++calls % 2 === 0 ? 3 : 0) };
  const { client, upstream, counters, ended } = await relayed({ gate });
  // While one direction's chunk waits for the gate, the other direction's reads reuse the buffer.
  const sent = await exchangeBothWays(client, upstream, 4 << 20);
  assert.ok(calls > 4, 'the gate saw the chunks');
  await ended;
  assert.deepEqual(counters, { bytesFromClient: sent.aToB, bytesToClient: sent.bToA });
});

test('a half-close is passed on, and the other direction goes on until it closes too', async () => {
  const { client, upstream, ended } = await relayed();
  const upstreamEnded = once(upstream, 'end');
  upstream.resume();
  client.end('last words');
  await upstreamEnded;
  // The client has finished sending; it still receives.
  const atClient = drain(client);
  upstream.end('the reply after the client finished');
  assert.equal((await atClient).length, 'the reply after the client finished'.length);
  await ended;
});

test('bytes the client sent before the relay started are relayed first, then bulk data after them', async () => {
  const { client, upstream } = await relayed({
    beforeRelay: async (proxyClient, client) => {
      // Read by the proxy's socket but not consumed: they sit in its buffer when the relay starts.
      proxyClient.resume();
      proxyClient.pause();
      client.write('early ');
      for (let i = 0; i < 200 && proxyClient.readableLength === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(proxyClient.readableLength, 'early '.length);
    },
  });
  const bulk = randomBytes(2 << 20);
  const received = drain(upstream);
  client.end(bulk);
  assert.equal((await received).digest, sha256(Buffer.concat([Buffer.from('early '), bulk])));
  upstream.end();
});

for (const side of ['upstream', 'client'] as const) {
  test(`a reset on the ${side} side ends the relay once, as an error, with both sockets destroyed`, {
    timeout: 20_000,
  }, async () => {
    const front = await tcpPair();
    const back = await tcpPair();
    back.dialled.pause();
    const closes: Array<[string | null, string]> = [];
    let closed!: () => void;
    const ended = new Promise<void>((resolve) => (closed = resolve));
    const sockets = relay(front.accepted, back.dialled, {
      idleMs: 0,
      gate: null,
      counters: { bytesFromClient: 0, bytesToClient: 0 },
      onClose: (error, cause) => {
        closes.push([error === null ? null : 'error', cause]);
        // What the session relies on: by now the relay has let go of both sides.
        closes.push([String(sockets.client.destroyed), String(sockets.upstream.destroyed)]);
        closed();
      },
    });
    // The outer end of the other side sees its connection end: the relay closed it too.
    const [resetting, other] = side === 'upstream' ? [back.accepted, front.dialled] : [front.dialled, back.accepted];
    const otherEnded = once(other, 'end');
    other.on('error', () => {}).resume();
    resetting.resetAndDestroy();
    await ended;
    await otherEnded;
    await new Promise((resolve) => setImmediate(resolve)); // a second onClose would come by now
    assert.deepEqual(closes, [
      ['error', 'error'],
      ['true', 'true'],
    ]);
  });
}

test('a chunk the gate holds keeps the source paused across the switch to pooled reads', {
  timeout: 20_000,
}, async () => {
  // The first bulk chunk is held for a while; whatever the source sends meanwhile must stay unread
  // (in the kernel, against the client's window), not pile up in the proxy's memory.
  let held = false;
  const gate: BandwidthGate = {
    take: (bytes) => {
      if (held || bytes < 16 * 1024) return 0;
      held = true;
      return 1000;
    },
  };
  const { client, upstream, sockets, proxyClient } = await relayed({ gate });
  try {
    client.write(randomBytes(256 * 1024));
    for (let i = 0; i < 500 && sockets.client === proxyClient; i++) await new Promise((r) => setTimeout(r, 10));
    assert.notEqual(sockets.client, proxyClient, 'the bulk read moved the client socket to pooled reads');
    assert.ok(held, 'the gate held the bulk chunk');
    assert.ok(sockets.client.isPaused(), 'the pooled socket reads on while the gate holds a chunk');
  } finally {
    for (const socket of [client, upstream, sockets.client, sockets.upstream]) socket.destroy();
  }
});

test('a FIN the client sent (and the proxy read) before the relay started is passed on at once', {
  timeout: 20_000,
}, async () => {
  const { client, upstream } = await relayed({
    beforeRelay: async (proxyClient, client) => {
      // The request's read saw the FIN too: the accepted socket has ended before the relay.
      proxyClient.resume();
      const ended = once(proxyClient, 'end');
      client.end();
      await ended;
      proxyClient.pause();
    },
  });
  try {
    const atUpstream = drain(upstream);
    assert.equal((await atUpstream).length, 0, 'the FIN reached the destination');
    upstream.end('the answer');
    assert.equal((await drain(client)).length, 'the answer'.length, 'and the other direction goes on');
  } finally {
    client.destroy();
    upstream.destroy();
  }
});

test('after the destination has finished, a bulk upload still arrives intact (the client socket stays on Node reads)', {
  timeout: 20_000,
}, async () => {
  const { client, upstream, ended } = await relayed();
  // The destination half-closes first: the proxy ends its writes to the client. A socket whose
  // writing has ended cannot move to pooled reads; the relay goes on with it as it is.
  const clientEnded = once(client, 'end');
  client.resume();
  upstream.end();
  await clientEnded;
  const bulk = randomBytes(2 << 20);
  const atUpstream = drain(upstream);
  client.end(bulk);
  assert.equal((await atUpstream).digest, sha256(bulk));
  await ended;
});

test('backpressure holds the source again after the destination caught up once', { timeout: 60_000 }, async (t) => {
  const { client, upstream, sockets } = await relayed();
  t.after(() => {
    for (const socket of [client, upstream, sockets.client, sockets.upstream]) socket.destroy();
  });
  upstream.pause();
  const payload = randomBytes(48 << 20);
  let blocked = false;
  let written = 0;
  void (async () => {
    for (; written < payload.length && !client.destroyed; written += 65_536) {
      if (client.write(payload.subarray(written, written + 65_536))) continue;
      blocked = true;
      await once(client, 'drain');
      blocked = false;
    }
  })();
  const until = async (check: () => boolean): Promise<boolean> => {
    for (let i = 0; i < 1000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    return check();
  };
  const stalled = (): boolean => blocked && sockets.client.isPaused();
  assert.ok(await until(stalled), 'the relay paused the client for the stalled destination');
  const heldAt = written;
  // The destination reads 12 MiB (past every buffer on the way), then stops again.
  let read = 0;
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      read += chunk.length;
      if (read < 12 << 20) return;
      upstream.pause();
      upstream.removeListener('data', onData);
      resolve();
    };
    upstream.on('data', onData).resume();
  });
  // The drain let the client go on: 12 MiB is more than every buffer held at the stall, so it wrote
  // on (a short resume may come and go between two polls: progress is watched, not the flag).
  assert.ok(await until(() => written > heldAt), 'the drain never let the client go on');
  assert.ok(await until(stalled), 'the second stall did not pause the client again');
  const bound = READ_BUFFER_BYTES + sockets.upstream.writableHighWaterMark;
  assert.ok(
    sockets.upstream.writableLength <= bound,
    `proxy holds ${sockets.upstream.writableLength} bytes (> ${bound})`,
  );
});
