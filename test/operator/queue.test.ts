// The work queue's guarantees, with time driven by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue, type Scheduler } from '../../operator/queue.ts';

/** A scheduler whose clock only moves when the test says so. */
function manualScheduler(): Scheduler & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const id = nextId++;
      timers.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].callback();
      }
      now = until;
    },
    pending: () => timers.size,
  };
}

test('a key added many times waits in the queue once, in first-added order', async () => {
  const queue = new WorkQueue();
  for (const key of ['a/1', 'b/2', 'a/1', 'c/3', 'b/2', 'a/1']) queue.add(key);
  assert.equal(queue.length, 3);
  assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['a/1', 'b/2', 'c/3']);
  assert.equal(queue.length, 0);
});

test('a key being processed is not handed out again; an add meanwhile brings it back once after done', async () => {
  const queue = new WorkQueue();
  queue.add('ns/p');
  const first = await queue.get();
  assert.equal(first, 'ns/p');
  queue.add('ns/p');
  queue.add('ns/p');
  assert.equal(queue.length, 0, 'not queued while a worker holds it');
  let second: string | null = null;
  const waiting = queue.get().then((key) => {
    second = key;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(second, null, 'a second worker must not get the key that is in progress');
  queue.done('ns/p');
  await waiting;
  assert.equal(second, 'ns/p');
  queue.done('ns/p');
  assert.equal(queue.length, 0, 'two adds during processing gave one more run, not two');
});

test('with many workers and repeated adds, no key is ever processed by two workers at once', async () => {
  const queue = new WorkQueue();
  const active = new Set<string>();
  const runs = new Map<string, number>();
  let overlaps = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === null) return;
      if (active.has(key)) overlaps++;
      active.add(key);
      runs.set(key, (runs.get(key) ?? 0) + 1);
      await new Promise((resolve) => setImmediate(resolve));
      if (Math.random() < 0.5) queue.add(key); // re-added while in progress
      active.delete(key);
      queue.done(key);
    }
  };
  const workers = Array.from({ length: 8 }, () => worker());
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < 5; k++) queue.add(`ns/k${k}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Drain: bounded wait until nothing is queued or in progress.
  for (let i = 0; i < 1000 && (queue.length > 0 || queue.processing > 0); i++)
    await new Promise((resolve) => setImmediate(resolve));
  queue.shutDown();
  await Promise.all(workers);
  assert.equal(overlaps, 0);
  assert.equal(runs.size, 5);
});

test('failures back off exponentially per key, capped, and forget() resets the count', async () => {
  const scheduler = manualScheduler();
  const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 100, scheduler });
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => queue.addRateLimited('ns/bad')),
    [10, 20, 40, 80, 100, 100],
  );
  assert.equal(queue.failures('ns/bad'), 6);
  assert.equal(queue.addRateLimited('ns/other'), 10, 'another key has its own count');
  queue.forget('ns/bad');
  assert.equal(queue.addRateLimited('ns/bad'), 10);
});

test('addAfter adds when the time comes; an earlier pending add wins over a later one', async () => {
  const scheduler = manualScheduler();
  const queue = new WorkQueue({ scheduler });
  queue.addAfter('ns/a', 100);
  queue.addAfter('ns/a', 500); // later: ignored
  queue.addAfter('ns/b', 300);
  queue.addAfter('ns/b', 50); // earlier: replaces
  assert.equal(scheduler.pending(), 2);
  scheduler.advance(49);
  assert.equal(queue.length, 0);
  scheduler.advance(1);
  assert.equal(await queue.get(), 'ns/b');
  scheduler.advance(50);
  assert.equal(await queue.get(), 'ns/a');
  scheduler.advance(1000);
  assert.equal(queue.length, 0, 'the replaced timers never fire');
});

test('shutDown wakes waiting workers with null, drops pending timers and refuses new work', async () => {
  const scheduler = manualScheduler();
  const queue = new WorkQueue({ scheduler });
  const waiting = [queue.get(), queue.get()];
  queue.addAfter('ns/x', 1000);
  queue.shutDown();
  assert.deepEqual(await Promise.all(waiting), [null, null]);
  assert.equal(scheduler.pending(), 0);
  queue.add('ns/y');
  assert.equal(queue.length, 0);
  assert.equal(await queue.get(), null);
});
