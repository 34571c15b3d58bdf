// How the log destination batches lines into write(2)s. Shared with other processes (--workers
// share one stdout) every write is at most PIPE_BUF (4096) bytes of whole lines, so no worker's
// line is ever split by another's; alone, it writes larger batches (fewer thread-pool hand-offs),
// still of whole lines. Both lose no line and keep their order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bufferedDestination } from '../../src/telemetry/log-destination.ts';

const LINES = 200;
const line = (i: number): string => `{"n":${String(i).padStart(4, '0')},"pad":"${'x'.repeat(330)}"}\n`; // 350 bytes

async function writesOf(
  shared: boolean,
  t: { mock: { method: typeof import('node:test').mock.method } },
  slowWriteMs = 0,
): Promise<{ sizes: number[]; text: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-logbatch-'));
  const file = path.join(dir, 'out.log');
  const sizes: number[] = [];
  const write = fs.write;
  t.mock.method(fs, 'write', (...args: Parameters<typeof fs.write>) => {
    const data = args[1] as string | Buffer;
    sizes.push(Buffer.byteLength(data));
    if (slowWriteMs === 0) return (write as (...a: unknown[]) => void)(...args);
    // A slow destination: each write completes slowWriteMs late (a full pipe, a busy disk).
    const done = args.at(-1) as (...r: unknown[]) => void;
    return (write as (...a: unknown[]) => void)(...args.slice(0, -1), (...r: unknown[]) =>
      setTimeout(() => done(...r), slowWriteMs),
    );
  });
  const stream = bufferedDestination(file, { shared });
  await new Promise<void>((resolve) =>
    (stream as unknown as { once(e: string, f: () => void): void }).once('ready', resolve),
  );
  for (let i = 0; i < LINES; i++) stream.write(line(i));
  // No flush here: the destination's own timer must write what is left, even if a write was
  // still in flight at its first tick. Wait (bounded) until every byte landed.
  const deadline = Date.now() + 5_000;
  while (readFileSync(file).length < LINES * 350 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  const text = readFileSync(file, 'utf8');
  (stream as unknown as { destroy(): void }).destroy();
  rmSync(dir, { recursive: true, force: true });
  return { sizes, text };
}

const expected = Array.from({ length: LINES }, (_, i) => line(i)).join('');

test('shared with workers: every write is whole lines and at most PIPE_BUF bytes', async (t) => {
  const { sizes, text } = await writesOf(true, t);
  assert.ok(text === expected, `the file holds ${text.length} bytes, not the ${expected.length} written, in order`);
  assert.ok(sizes.length >= Math.ceil((LINES * 350) / 4096), `${sizes.length} writes`);
  for (const size of sizes) {
    assert.ok(size <= 4096, `a write of ${size} bytes could interleave with another worker's`);
    assert.equal(size % 350, 0, `a write of ${size} bytes splits a line`);
  }
});

test('alone: whole lines in batches larger than PIPE_BUF, so a quarter of the writes', async (t) => {
  const { sizes, text } = await writesOf(false, t);
  assert.ok(text === expected, `the file holds ${text.length} bytes, not the ${expected.length} written, in order`);
  for (const size of sizes) assert.equal(size % 350, 0, `a write of ${size} bytes splits a line`);
  assert.ok(
    sizes.some((size) => size > 4096),
    `writes ${sizes.join(', ')}`,
  );
  assert.ok(sizes.length <= Math.ceil((LINES * 350) / 15_000) + 1, `${sizes.length} writes`);
});

test('a flush timer tick during a slow write does not strand the lines left over', async (t) => {
  // The first tick (100 ms) finds a write in flight (150 ms): the lines after it must still go out
  // at a later tick, not wait for the next line to arrive.
  const { text } = await writesOf(false, t, 150);
  assert.ok(text === expected, `the file holds ${text.length} bytes, not the ${expected.length} written`);
});
