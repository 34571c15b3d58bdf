// Bulk data through a relay, checked by digest: what one end sends, the other must receive whole.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Reads `socket` to its end, returning the SHA-256 and length of everything received. */
export function drain(socket: Socket): Promise<{ digest: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  socket.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    length += chunk.length;
  });
  socket.resume();
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve({ digest: hash.digest('hex'), length }));
    socket.once('error', reject);
  });
}

/**
 * `a` and `b` each send `bytes` random bytes and a FIN at the same time; asserts each end got
 * exactly what the other sent. Returns the byte counts for the caller's own checks.
 */
export async function exchangeBothWays(a: Socket, b: Socket, bytes: number): Promise<{ aToB: number; bToA: number }> {
  const aToB = randomBytes(bytes);
  const bToA = randomBytes(bytes);
  const atB = drain(b);
  const atA = drain(a);
  a.end(aToB);
  b.end(bToA);
  assert.deepEqual(await atB, { digest: sha256(aToB), length: aToB.length }, 'a → b intact');
  assert.deepEqual(await atA, { digest: sha256(bToA), length: bToA.length }, 'b → a intact');
  return { aToB: aToB.length, bToA: bToA.length };
}

/** A connected pair: the end a server accepted (paused, as the proxy's are) and the dialling end. */
export async function tcpPair(): Promise<{ accepted: Socket; dialled: Socket; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const dialled = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [Socket];
  await once(dialled, 'connect');
  server.close();
  return {
    accepted,
    dialled,
    close: () => {
      accepted.destroy();
      dialled.destroy();
    },
  };
}
