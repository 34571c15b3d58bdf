// Real redis-server processes for tests: one standalone server (stoppable, killable and
// restartable on the same port, so reconnect paths are exercised for real) and a small Redis
// Cluster. Nothing is persisted (`--save '' --appendonly no`): a restarted server is empty, like
// a Redis pod that lost its volume. Every process is also killed if the test process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './spawn.ts';

export const REDIS_SERVER = '/usr/bin/redis-server';
const READY_LINE = 'Ready to accept connections';
const START_TIMEOUT_MS = 10_000;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The running server's process id (a new one after restart()): benchmarks read its CPU time. */
  readonly pid: number;
  /** Shuts the server down (SIGTERM) and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal and waits for the exit (SIGKILL, SIGTERM) or the stop (SIGSTOP). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a fresh, empty server on the same port after kill()/a crash. */
  restart(): Promise<void>;
  /** Resumes a server paused with kill('SIGSTOP'). */
  resume(): void;
}

/** A port the kernel just handed out on loopback; the caller binds it right away. */
export const findFreePort = freePort;

function spawnServer(port: number, dir: string, extra: readonly string[]): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--loglevel',
    'notice',
    ...extra,
  ];
  return spawnUntil(args, READY_LINE, port);
}

async function spawnUntil(args: readonly string[], readyLine: string, port: number): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server on ${port} not ready:\n${output}`)),
      START_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes(readyLine)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on ${port} exited (${code}):\n${output}`));
    });
  });
  await ready;
  return child;
}

async function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

/** Starts redis-server on a free loopback port; `args` are extra server options. */
export async function startRedis(args: readonly string[] = []): Promise<RedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-redis-'));
  let port = 0;
  let child: ChildProcess | null = null;
  // Another process may take the port between the probe and redis binding it: try again.
  for (let attempt = 0; attempt < 3 && child === null; attempt++) {
    port = await findFreePort();
    try {
      child = await spawnServer(port, dir, args);
    } catch (error) {
      if (attempt === 2) throw error;
    }
  }
  let current = child as ChildProcess;
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid ?? 0;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      current.kill('SIGCONT');
      current.kill('SIGTERM');
      await waitExit(current);
      rmSync(dir, { recursive: true, force: true });
    },
    async kill(signal = 'SIGKILL') {
      current.kill(signal);
      if (signal !== 'SIGSTOP') await waitExit(current);
    },
    async restart() {
      current.kill('SIGKILL');
      await waitExit(current);
      current = await spawnServer(port, dir, args);
    },
    resume() {
      current.kill('SIGCONT');
    },
  };
}

export interface RedisClusterHandle {
  readonly nodes: readonly { host: string; port: number }[];
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `size` masters splitting the 16384 slots, so scripts whose keys are not
 * in one slot fail with CROSSSLOT and keys of different rules live on different nodes.
 */
export async function startRedisCluster(size = 3): Promise<RedisClusterHandle> {
  const servers: RedisServer[] = [];
  const busPorts: number[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const busPort = await findFreePort();
      busPorts.push(busPort);
      servers.push(
        await startRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPort),
          '--cluster-node-timeout',
          '2000',
          // A lone master never learns its own address from a peer and would announce an empty one.
          '--cluster-announce-ip',
          '127.0.0.1',
          '--cluster-config-file',
          `nodes-${busPort}.conf`,
        ]),
      );
    }
    const slotsPer = Math.ceil(16384 / size);
    for (const [i, server] of servers.entries()) {
      const lo = i * slotsPer;
      const hi = Math.min(16383, lo + slotsPer - 1);
      await sendCommands(server.port, [['CLUSTER', 'ADDSLOTSRANGE', String(lo), String(hi)]]);
      if (i > 0)
        await sendCommands(servers[0]!.port, [
          ['CLUSTER', 'MEET', '127.0.0.1', String(server.port), String(busPorts[i])],
        ]);
    }
    // Gossip converges in a few hundred ms; poll every node until all agree (bounded).
    for (let attempt = 0; attempt < 200; attempt++) {
      const infos = await Promise.all(servers.map((s) => sendCommands(s.port, [['CLUSTER', 'INFO']])));
      if (infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${size}`)))
        break;
      if (attempt === 199) throw new Error(`cluster did not converge: ${infos.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    await Promise.all(servers.map((s) => s.stop()));
    throw error;
  }
  return {
    nodes: servers.map((s) => ({ host: '127.0.0.1', port: s.port })),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** Sends RESP commands on a raw socket and returns the raw reply text (setup only). */
export async function sendCommands(port: number, commands: readonly (readonly string[])[]): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const encoded = commands
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    .join('');
  socket.end(encoded + '*1\r\n$4\r\nQUIT\r\n');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString();
}

/** A Sentinel watching the master on `masterPort` under `name` (quorum 1). */
export async function startRedisSentinel(
  masterPort: number,
  name: string,
): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-sentinel-'));
  const port = await findFreePort();
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 1\n`);
  const child = await spawnUntil([conf, '--sentinel'], '+monitor master', port);
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      await waitExit(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
