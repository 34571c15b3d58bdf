// `proxy --workers 2` as users run it: both workers serve sessions on the one port, /metrics
// sums them, a worker that dies is replaced, and SIGTERM drains every worker — sessions already
// open keep relaying through the drain, new ones are turned away, and the supervisor exits 0
// once both workers have drained.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getOps, socksConnect, startProxyProcess, type ProxyProcess } from '../helpers/fleet.ts';
import { allowLoopbackPolicy, startEchoServer, type Closable } from '../helpers/servers.ts';

let dir: string;
let echo: Closable;
let proxy: ProxyProcess;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-workers-'));
  await writeFile(path.join(dir, 'policy.yaml'), allowLoopbackPolicy);
  echo = await startEchoServer();
  proxy = await startProxyProcess(
    ['--policy-file', path.join(dir, 'policy.yaml'), '--workers', '2', '--drain-grace', '60s'],
    60_000,
  );
});
after(async () => {
  await proxy.kill('SIGKILL');
  await echo.close();
  await rm(dir, { recursive: true, force: true });
});

interface LogLine {
  pid: number;
  msg: string;
  worker?: number;
}
const lines = (): LogLine[] =>
  proxy
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
// A message or its longer form ("draining (send the signal again to force the exit)").
const pidsWith = (msg: string): Set<number> =>
  new Set(
    lines()
      .filter((l) => l.msg === msg || String(l.msg).startsWith(`${msg} (`))
      .map((l) => l.pid),
  );

/** Polls (bounded) until `check` holds. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; log:\n${proxy.log().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One CONNECT with an echoed byte, closed; true when granted and echoed. */
async function session(): Promise<boolean> {
  const { code, socket } = await socksConnect(proxy.port, echo.port);
  if (code !== 90) return false;
  socket.write('x');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  return chunk.toString() === 'x';
}

test('two workers serve the one port, and /metrics counts the sessions of both', async () => {
  // Worker log lines are buffered (up to 100 ms): wait for both rather than read them at once.
  await eventually('two worker processes listening', () => pidsWith('socks4-fleet worker listening').size === 2);
  const workerPids = pidsWith('socks4-fleet worker listening');
  assert.equal(workerPids.size, 2, 'two worker processes listen');
  // The kernel spreads connections by hash; within a few hundred both must have served.
  let served = 0;
  await eventually(
    'sessions on both workers',
    async () => {
      assert.ok(await session());
      served++;
      return pidsWith('session closed').size === 2 || served >= 400;
    },
    60_000,
  );
  assert.deepEqual(pidsWith('session closed'), workerPids);
  await eventually('metrics summed over both workers', async () => {
    const { status, body } = await getOps(proxy.opsPort, '/metrics');
    assert.equal(status, 200);
    const total = /socks4_sessions_total\{command="connect",reply="90",reason=""\} (\d+)/.exec(body);
    return Number(total?.[1]) === served;
  });
  assert.equal((await getOps(proxy.opsPort, '/readyz')).status, 200);
});

test('a worker that dies is replaced, and the port keeps serving', async () => {
  const before = [...pidsWith('socks4-fleet worker listening')];
  process.kill(before[0] as number, 'SIGKILL');
  await eventually('a third worker listening', () => pidsWith('socks4-fleet worker listening').size === 3);
  for (let i = 0; i < 10; i++) assert.ok(await session(), `session ${i} after the replacement`);
  await eventually('ready again', async () => (await getOps(proxy.opsPort, '/readyz')).status === 200);
});

test('SIGTERM drains every worker: open sessions keep relaying, new ones are refused, exit 0', async () => {
  const workerPids = new Set(
    [...pidsWith('socks4-fleet worker listening')].filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    }),
  );
  assert.equal(workerPids.size, 2);
  // Sessions held open across the drain (spread over the workers by the kernel).
  const held = await Promise.all(Array.from({ length: 12 }, () => socksConnect(proxy.port, echo.port)));
  assert.ok(held.every((h) => h.code === 90));
  const exited = once(proxy.child, 'exit');
  proxy.child.kill('SIGTERM');
  await eventually('every worker draining', () => [...workerPids].every((pid) => pidsWith('draining').has(pid)));
  // Not ready, and the SOCKS port closed on every worker: a new connection is refused.
  await eventually('not ready', async () => (await getOps(proxy.opsPort, '/readyz')).status === 503);
  await eventually(
    'SOCKS port closed',
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: proxy.port });
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      }),
  );
  // The held sessions still relay.
  for (const { socket } of held) {
    socket.write('still here');
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'still here');
  }
  for (const { socket } of held) socket.end();
  const timeout = setTimeout(() => proxy.child.kill('SIGKILL'), 30_000); // a hung drain fails, never hangs
  const [code] = (await exited) as [number | null];
  clearTimeout(timeout);
  assert.equal(code, 0);
  assert.deepEqual(
    [...workerPids].filter((pid) => !pidsWith('drained; exiting').has(pid)),
    [],
    'every worker drained',
  );
});
