// The admission batcher on its own: what goes out together, in what order, and how each admission
// keeps its own deadline. `send` here is the test's: it records batches and answers when told to
// (the real one is the Redis script, tested in test/redis/).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdmitBatcher, type BatchOutcome } from '../../src/limits/admit-batch.ts';

interface Sent {
  requests: readonly number[];
  answer(replies: readonly string[]): void;
  fail(error: Error): void;
}

function harness(timeoutMs: number, maxBatch?: number) {
  const sent: Sent[] = [];
  const late: [number, string][] = [];
  let wake: (() => void) | null = null;
  const batcher = new AdmitBatcher<number, string>({
    timeoutMs,
    ...(maxBatch === undefined ? {} : { maxBatch }),
    send: (requests) =>
      new Promise((resolve, reject) => {
        sent.push({ requests, answer: resolve, fail: reject });
        wake?.();
      }),
    onLate: (request, reply) => void late.push([request, reply]),
  });
  /** Resolves once `n` batches have gone out (bounded: fails after 2 s). */
  const batches = async (n: number): Promise<Sent[]> => {
    const deadline = performance.now() + 2000;
    while (sent.length < n) {
      assert.ok(performance.now() < deadline, `only ${sent.length} of ${n} batches sent`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return sent;
  };
  return { batcher, batches, late };
}

const replyOf = (o: BatchOutcome<string>): string => (o.error === undefined ? o.reply : `error: ${o.error.message}`);

describe('admission batcher', () => {
  it('sends admissions asked in one turn as one batch, and those asked while it is out as the next', async () => {
    const { batcher, batches } = harness(10_000);
    const first = [1, 2, 3].map((n) => batcher.admit('g', n));
    const [one] = await batches(1);
    const second = [4, 5].map((n) => batcher.admit('g', n));
    // Another group is not held behind this one's batch.
    const other = batcher.admit('h', 9);
    const sent = await batches(2);
    assert.deepEqual(
      sent.map((s) => s.requests),
      [[1, 2, 3], [9]],
    );
    assert.equal(batcher.inFlight, 6);
    one?.answer(['a1', 'a2', 'a3']);
    assert.deepEqual((await Promise.all(first)).map(replyOf), ['a1', 'a2', 'a3']);
    const next = await batches(3);
    assert.deepEqual(next[2]?.requests, [4, 5]);
    next[2]?.answer(['a4', 'a5']);
    next[1]?.answer(['a9']);
    assert.deepEqual((await Promise.all([...second, other])).map(replyOf), ['a4', 'a5', 'a9']);
    assert.equal(batcher.inFlight, 0);
  });

  it('splits a queue longer than the largest batch, in order', async () => {
    const { batcher, batches } = harness(10_000, 2);
    const asked = [1, 2, 3, 4, 5].map((n) => batcher.admit('g', n));
    for (let i = 0; i < 3; i++) {
      const sent = await batches(i + 1);
      const batch = sent[i] as Sent;
      batch.answer(batch.requests.map((n) => `a${n}`));
    }
    const sent = await batches(3);
    assert.deepEqual(
      sent.map((s) => s.requests),
      [[1, 2], [3, 4], [5]],
    );
    assert.deepEqual((await Promise.all(asked)).map(replyOf), ['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('answers every admission past its deadline with the reason, each by its own deadline; late answers go to onLate', async () => {
    const { batcher, batches, late } = harness(150);
    const started = performance.now();
    const early = [1, 2].map((n) => batcher.admit('g', n).then((o) => ({ o, at: performance.now() - started })));
    const [stalled] = await batches(1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    // Asked 60 ms later, queued behind the stalled batch: its deadline counts from its own ask.
    const later = batcher.admit('g', 3).then((o) => ({ o, at: performance.now() - started }));
    const firstTwo = await Promise.all(early);
    for (const { o, at } of firstTwo) {
      assert.equal(replyOf(o), 'error: Redis did not answer within 150 ms');
      assert.ok(at >= 145, `answered after ${at} ms`);
    }
    const third = await later;
    assert.equal(replyOf(third.o), 'error: Redis did not answer within 150 ms');
    assert.ok(third.at >= 205, `the later admission expired after ${third.at} ms, before its own deadline`);
    assert.equal(batcher.inFlight, 3, 'still waiting on the connection');
    // The stalled batch is answered at last: nobody is waiting, so the answers go to onLate.
    stalled?.answer(['a1', 'a2']);
    const sent = await batches(2);
    assert.deepEqual(sent[1]?.requests, [3]);
    sent[1]?.answer(['a3']);
    for (let i = 0; i < 100 && late.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(late, [
      [1, 'a1'],
      [2, 'a2'],
      [3, 'a3'],
    ]);
    assert.equal(batcher.inFlight, 0);
  });

  it('answers every member of a failed batch with its error, and sends the next', async () => {
    const { batcher, batches } = harness(10_000);
    const asked = [1, 2].map((n) => batcher.admit('g', n));
    const [first] = await batches(1);
    const queued = batcher.admit('g', 3);
    first?.fail(new Error('Connection is closed.'));
    assert.deepEqual((await Promise.all(asked)).map(replyOf), [
      'error: Connection is closed.',
      'error: Connection is closed.',
    ]);
    const sent = await batches(2);
    sent[1]?.answer(['a3']);
    assert.equal(replyOf(await queued), 'a3');
  });
});
