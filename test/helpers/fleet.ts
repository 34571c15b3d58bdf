// Real proxy processes for fleet tests and benchmarks: `node src/cli/main.ts proxy ...` spawned
// with ports picked by the kernel (read back from the "listening" log line), plus small SOCKS
// probes. Children run without NODE_EXTRA_CA_CERTS (parsing a CA bundle costs seconds each).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { socks4Request } from './servers.ts';
import { cleanEnv } from './spawn.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'src/cli/main.ts');

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export function childEnv(): NodeJS.ProcessEnv {
  return cleanEnv();
}

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly opsPort: number;
  /** Everything the process logged so far. */
  log(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `socks4-fleet proxy` with `args` on loopback ports of the kernel's choosing. */
export async function startProxyProcess(args: readonly string[], timeoutMs = 30_000): Promise<ProxyProcess> {
  const child = spawn(
    process.execPath,
    [MAIN, 'proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', ...args],
    {
      cwd: ROOT,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  // A bounded tail of the output: a benchmark logs a line per session.
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 256 * 1024) output = output.slice(-128 * 1024);
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  const listening = await new Promise<{ listen: string; ops: string }>((resolve, reject) => {
    // A proxy that never says it is listening is stopped here: the caller gets no handle to it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (): void => {
      const line = output.split('\n').find((l) => l.includes('socks4-fleet proxy listening'));
      if (line === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      resolve(JSON.parse(line) as { listen: string; ops: string });
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited (${code}):\n${output}`));
    });
  });
  const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));
  return {
    child,
    port: portOf(listening.listen),
    opsPort: portOf(listening.ops),
    log: () => output,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await once(child, 'exit');
    },
  };
}

/**
 * Starts one proxy per argument list at once. When any fails to start, the ones that did start
 * are stopped before the error is thrown: a `before` hook that fails never leaves proxies behind
 * (their pipes would keep the test file running with nothing to stop them).
 */
export async function startProxyProcesses(argLists: readonly (readonly string[])[]): Promise<ProxyProcess[]> {
  const settled = await Promise.allSettled(argLists.map((args) => startProxyProcess(args)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return settled.map((r) => (r as PromiseFulfilledResult<ProxyProcess>).value);
  await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.kill('SIGKILL') : undefined)));
  throw failed.reason;
}

/** Runs the CLI to completion. */
export async function runCli(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, out };
}

export interface SocksAttempt {
  /** The reply code (90 granted, 91 refused), or -1 when the proxy closed without one. */
  readonly code: number;
  readonly socket: net.Socket;
}

/** One SOCKS4 CONNECT to 127.0.0.1:destPort through the proxy; the socket stays open. */
export async function socksConnect(proxyPort: number, destPort: number, userId = 'fleet'): Promise<SocksAttempt> {
  const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(socks4Request(1, destPort, '127.0.0.1', userId));
  let received = Buffer.alloc(0);
  const code = await new Promise<number>((resolve) => {
    const timer = setTimeout(() => resolve(-1), 10_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 8) {
        clearTimeout(timer);
        resolve(received[1] as number);
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received.length >= 8 ? (received[1] as number) : -1);
    });
  });
  return { code, socket };
}

/** The reply code of one CONNECT, closing the connection right away. */
export async function probe(proxyPort: number, destPort: number): Promise<number> {
  const { code, socket } = await socksConnect(proxyPort, destPort);
  socket.destroy();
  return code;
}

/** A TCP server on loopback that accepts and holds connections until closed. */
export async function startSink(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** GET an ops endpoint; resolves with the status and body. */
export async function getOps(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${urlPath}`);
  return { status: response.status, body: await response.text() };
}
