// Session log lines are buffered (several lines per write(2)), and none may be lost: the real
// proxy process, its stdout a file, serves sessions and is then stopped by SIGTERM or SIGINT;
// every session's line must be in the file. Without a signal, the flush timer must put them
// there while the proxy still runs (which bounds what a SIGKILL can lose).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FLUSH_INTERVAL_MS } from '../../src/telemetry/log-destination.ts';
import { allowLoopbackPolicy, exchange, socks4Request, startEchoServer, type Closable } from '../helpers/servers.ts';
import { cleanEnv, cliPath, repoRoot } from '../helpers/spawn.ts';

const SESSIONS = 150;
const PAYLOAD = Buffer.from('log-flush-0123456789');

let dir: string;
let policyFile: string;
let echo: Closable;
const children = new Set<ChildProcess>(); // every proxy started, killed by pid in after()

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-logflush-'));
  policyFile = path.join(dir, 'policy.yaml');
  await writeFile(policyFile, allowLoopbackPolicy);
  echo = await startEchoServer();
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await echo.close();
  await rm(dir, { recursive: true, force: true });
});

const sessionLines = (file: string): { session: string; reply: number }[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"session closed"'))
    .map((l) => JSON.parse(l) as { session: string; reply: number });

/** Polls `file` (bounded) until `done` holds; returns its text. */
async function waitForFile(file: string, done: (text: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(file, 'utf8');
    if (done(text)) return text;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms; the file holds:\n${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The proxy as users run it, stdout to `file` (as a container runtime gives it a file or pipe). */
async function startProxyLoggingTo(file: string): Promise<{ child: ChildProcess; port: number }> {
  const fd = openSync(file, 'w');
  const child = spawn(
    process.execPath,
    [cliPath, 'proxy', '--policy-file', policyFile, '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0'],
    {
      cwd: repoRoot,
      env: cleanEnv(),
      stdio: ['ignore', fd, 'inherit'],
    },
  );
  closeSync(fd);
  children.add(child);
  child.once('exit', () => children.delete(child));
  const text = await waitForFile(file, (t) => t.includes('socks4-fleet proxy listening'), 20_000);
  const line = text.split('\n').find((l) => l.includes('socks4-fleet proxy listening'))!;
  const listen = (JSON.parse(line) as { listen: string }).listen;
  return { child, port: Number(listen.slice(listen.lastIndexOf(':') + 1)) };
}

/** SESSIONS sessions, 10 at a time, each granted and echoing PAYLOAD; resolves when all closed. */
async function serveSessions(port: number): Promise<void> {
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < SESSIONS) {
      next++;
      const { reply, raw } = await exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'flush'));
      assert.equal(reply[1], 90);
      raw.socket.write(PAYLOAD);
      assert.deepEqual(await raw.read(PAYLOAD.length), PAYLOAD);
      raw.socket.end();
      await raw.closed;
    }
  };
  await Promise.all(Array.from({ length: 10 }, one));
}

function assertEverySession(file: string): void {
  const lines = sessionLines(file);
  assert.equal(lines.length, SESSIONS, `expected ${SESSIONS} session lines, found ${lines.length}`);
  assert.equal(new Set(lines.map((l) => l.session)).size, SESSIONS, 'every session id once');
  assert.ok(lines.every((l) => l.reply === 90));
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: every session line is in the log when the proxy has exited`, async () => {
    const file = path.join(dir, `${signal}.log`);
    const { child, port } = await startProxyLoggingTo(file);
    const exited = once(child, 'exit');
    await serveSessions(port);
    child.kill(signal); // at once: lines of the last sessions are still in the buffer
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000); // a drain that hangs fails, never hangs the run
    const [code] = (await exited) as [number | null];
    clearTimeout(killer);
    assert.equal(code, 0);
    assertEverySession(file);
    assert.match(readFileSync(file, 'utf8'), /"drained; exiting"/);
  });
}

test('no signal: the flush timer writes every line while the proxy runs, so a SIGKILL loses at most one interval', async () => {
  const file = path.join(dir, 'running.log');
  const { child, port } = await startProxyLoggingTo(file);
  const exited = once(child, 'exit');
  try {
    await serveSessions(port);
    // Fewer bytes than one buffered write may still be waiting: only the timer writes them.
    const bound = 50 * FLUSH_INTERVAL_MS + 5_000; // generous for a loaded machine; typically one interval
    await waitForFile(file, (t) => t.split('"session closed"').length - 1 === SESSIONS, bound);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  assertEverySession(file);
});
