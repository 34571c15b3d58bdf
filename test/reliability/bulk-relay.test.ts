// Bulk sessions through a real proxy while clients hang up on it: sessions big enough to move to
// pooled reads (src/server/pooled-reads.ts) run side by side with small ones, and some clients
// reset or close mid-transfer. Every session that completes delivers exactly what was sent (the
// destination answers with a digest), nothing is left open, nothing goes unhandled.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { allowLoopbackPolicy, socks4Request, startProxy, type TestProxy } from '../helpers/servers.ts';

const SESSIONS = 120;
const CONCURRENT = 40;

let proxy: TestProxy;
let destination: net.Server;
let destinationPort: number;

before(async () => {
  proxy = await startProxy(allowLoopbackPolicy);
  // Reads everything to the client's FIN, then answers with the count and digest and closes.
  destination = net.createServer({ allowHalfOpen: true }, (socket) => {
    const hash = createHash('sha256');
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    socket.on('end', () => socket.end(JSON.stringify({ length, digest: hash.digest('hex') })));
    socket.on('error', () => {});
  });
  destination.listen(0, '127.0.0.1');
  await once(destination, 'listening');
  destinationPort = (destination.address() as net.AddressInfo).port;
});

after(async () => {
  await proxy.close();
  destination.close();
});

type Outcome = 'intact' | 'corrupt' | 'hung-up';

function session(size: number, ending: 'complete' | 'reset' | 'destroy', hangUpAfterMs: number): Promise<Outcome> {
  const payload = randomBytes(size);
  return new Promise((resolve) => {
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    const received: Buffer[] = [];
    let outcome: Outcome = 'hung-up';
    client.on('error', () => {});
    client.on('data', (chunk: Buffer) => received.push(chunk));
    client.on('end', () => {
      const all = Buffer.concat(received);
      const answer =
        all[1] === 90 ? (JSON.parse(all.subarray(8).toString()) as { length: number; digest: string }) : null;
      const sent = createHash('sha256').update(payload).digest('hex');
      outcome = answer?.length === size && answer.digest === sent ? 'intact' : 'corrupt';
      client.end();
    });
    client.on('close', () => resolve(outcome));
    client.on('connect', () => {
      client.write(socks4Request(1, destinationPort, '127.0.0.1', 'bulk'));
      if (ending === 'complete') return void client.end(payload);
      client.write(payload);
      setTimeout(() => (ending === 'reset' ? client.resetAndDestroy() : client.destroy()), hangUpAfterMs);
    });
  });
}

test(`${SESSIONS} sessions up to 2 MiB, a fifth of them hung up mid-transfer: intact or cleanly gone`, async () => {
  let unhandled = 0;
  const onUnhandled = (): void => void unhandled++;
  process.on('unhandledRejection', onUnhandled);
  const outcomes: Outcome[] = [];
  const expectedComplete: boolean[] = [];
  for (let first = 0; first < SESSIONS; first += CONCURRENT) {
    const batch = Array.from({ length: Math.min(CONCURRENT, SESSIONS - first) }, (_, i) => {
      const index = first + i;
      // Small ones among the bulk; at least one byte: a client that half-closes before its reply
      // having sent nothing has hung up, and its session ends at once (issue #12).
      const size = index % 4 === 0 ? index + 1 : (index * 7919) % (2 << 20);
      const ending = index % 10 === 3 ? 'reset' : index % 10 === 7 ? 'destroy' : 'complete';
      expectedComplete.push(ending === 'complete');
      return session(size, ending, index % 20);
    });
    outcomes.push(...(await Promise.all(batch)));
  }
  process.off('unhandledRejection', onUnhandled);
  assert.equal(outcomes.filter((o) => o === 'corrupt').length, 0, 'no session delivered wrong bytes');
  assert.deepEqual(
    outcomes.map((o, i) => (expectedComplete[i] ? o : 'ended')),
    expectedComplete.map((complete) => (complete ? 'intact' : 'ended')),
    'every session that was not hung up delivered everything',
  );
  assert.equal(unhandled, 0);
  for (let i = 0; i < 100 && proxy.server.activeSessions > 0; i++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(proxy.server.activeSessions, 0, 'no session left open');
});
