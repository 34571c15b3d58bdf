// Child processes of the benchmark: spawned with a bounded output tail, killed when the harness
// exits however it exits, and stopped with SIGTERM then SIGKILL after a bounded wait.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export interface Managed {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

const MAX_OUTPUT = 64 * 1024;
const STOP_GRACE_MS = 5_000;

export function spawnManaged(command: string, args: readonly string[], options: SpawnOptions = {}): Managed {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (child.pid === undefined) throw new Error(`cannot start ${command}`);
  alive.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT / 2);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let done = false;
  child.once('exit', () => {
    done = true;
    alive.delete(child);
  });
  return {
    child,
    pid: child.pid,
    output: () => output,
    exited: () => done,
    async stop() {
      if (done) return;
      const exit = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Polls until `probe` answers true, the process exits, or the time is up (then throws). */
export async function waitUntil(
  what: string,
  managed: Managed | null,
  probe: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (managed?.exited() === true) throw new Error(`${what} exited:\n${managed.output()}`);
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms:\n${managed?.output() ?? ''}`);
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

export { freePort } from '../../test/helpers/spawn.ts';
