// Resource-exhaustion attacks on a proxy in its own process (proxy-process.ts), launched from a
// third process (attacker-process.ts): slowloris clients that send one byte every few seconds
// and reconnect when dropped, a burst of connections at once; and a legitimate client, timed
// from the test process before and during both. Shared by exhaustion.test.ts (scaled down) and
// the soak run (full size).
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { ServerConfig } from '../../src/server/session-env.ts';
import { socks4Request } from '../helpers/servers.ts';
import { cleanEnv } from '../helpers/spawn.ts';
import type { ProxyProcessConfig, ProxySample } from './proxy-process.ts';

const childPath = fileURLToPath(new URL('./proxy-process.ts', import.meta.url));
const attackerPath = fileURLToPath(new URL('./attacker-process.ts', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ProxyProcess {
  port: number;
  echoPort: number;
  pid: number;
  samples: ProxySample[];
  latest(): ProxySample;
  stop(): Promise<number | null>;
}

export async function startProxyProcess(server: Partial<ServerConfig>, sampleMs = 50): Promise<ProxyProcess> {
  const config: ProxyProcessConfig = { server, sampleMs };
  const child: ChildProcess = fork(childPath, [JSON.stringify(config)], {
    env: cleanEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const samples: ProxySample[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<{ port: number; echoPort: number }>((resolve, reject) => {
    child.on('message', (message: { type: string } & Record<string, number>) => {
      if (message.type === 'ready') resolve({ port: message.port!, echoPort: message.echoPort! });
      else if (message.type === 'sample') samples.push(message as unknown as ProxySample);
    });
    void exited.then((code) => reject(new Error(`proxy process exited early (${code})`)));
  });
  const { port, echoPort } = await ready;
  while (samples.length === 0) await sleep(sampleMs);
  return {
    port,
    echoPort,
    pid: child.pid!,
    samples,
    latest: () => samples.at(-1)!,
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Resolves with the first `n` bytes received (fewer if the socket ends or `ms` passes). */
function readBytes(socket: net.Socket, n: number, ms: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', done);
      socket.removeListener('end', done);
      resolve(got);
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) done();
    };
    const timer = setTimeout(done, ms);
    socket.on('data', onData);
    socket.once('close', done);
    socket.once('end', done);
  });
}

export type Outcome =
  | 'granted'
  | 'refused'
  | 'closed-without-reply'
  | 'connect-failed'
  | 'no-reply-in-time'
  | 'bad-echo';

/** One client: request, reply, then (when granted) a round trip of `payload`, held `holdMs`. */
export async function runClient(
  port: number,
  echoPort: number,
  options: { userId: string; localAddress?: string; holdMs?: number; timeoutMs?: number },
): Promise<{ outcome: Outcome; handshakeMs: number }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const started = performance.now();
  const socket = net.connect({
    host: '127.0.0.1',
    port,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  socket.on('error', () => {});
  try {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const connected = await Promise.race([
      once(socket, 'connect').then(
        () => true,
        () => false,
      ),
      late,
    ]);
    clearTimeout(timer);
    if (!connected) return { outcome: 'connect-failed', handshakeMs: performance.now() - started };
    socket.write(socks4Request(1, echoPort, '127.0.0.1', options.userId));
    const reply = await readBytes(socket, 8, timeoutMs);
    const handshakeMs = performance.now() - started;
    if (reply.length < 8)
      return {
        outcome: socket.readableEnded || socket.destroyed ? 'closed-without-reply' : 'no-reply-in-time',
        handshakeMs,
      };
    if (reply[1] !== 90) return { outcome: reply[0] === 0 && reply[1] === 91 ? 'refused' : 'bad-echo', handshakeMs };
    socket.write('ping');
    const echoed = await readBytes(socket, 4, timeoutMs);
    if (echoed.toString() !== 'ping') return { outcome: 'bad-echo', handshakeMs };
    if (options.holdMs) await sleep(options.holdMs);
    return { outcome: 'granted', handshakeMs };
  } finally {
    socket.destroy();
  }
}

/**
 * Slowloris: `count` connections, each sending one byte of an endless USERID every `byteMs`,
 * reconnecting (after a short pause) whenever the proxy drops it, until stopped.
 */
export function startSlowloris(port: number, count: number, byteMs: number, rampMs: number) {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const stats = { connections: 0, droppedByProxy: 0, refusedReplies: 0, peakOpen: 0 };
  let running = true;
  const open = (slot: number): void => {
    if (!running) return;
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.1.${1 + (slot % 250)}` });
    stats.connections++;
    sockets.add(socket);
    stats.peakOpen = Math.max(stats.peakOpen, sockets.size);
    const head = Buffer.from([4, 1, 0, 80, 127, 0, 0, 1]);
    let sent = 0;
    const tick = setInterval(() => {
      if (socket.writable) socket.write(sent < head.length ? head.subarray(sent, sent + 1) : 'x');
      sent++;
    }, byteMs);
    timers.add(tick);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      if (chunk[1] === 91) stats.refusedReplies++;
    });
    socket.once('close', () => {
      clearInterval(tick);
      timers.delete(tick);
      sockets.delete(socket);
      if (!running) return;
      stats.droppedByProxy++;
      const again = setTimeout(() => {
        timers.delete(again);
        open(slot);
      }, 250);
      timers.add(again);
    });
  };
  for (let slot = 0; slot < count; slot++) {
    const t = setTimeout(
      () => {
        timers.delete(t);
        open(slot);
      },
      (rampMs * slot) / count,
    );
    timers.add(t);
  }
  return {
    stats,
    get open() {
      return sockets.size;
    },
    stop(): void {
      running = false;
      for (const t of timers) clearTimeout(t);
      for (const socket of sockets) socket.destroy();
    },
  };
}

export interface Timings {
  tried: number;
  servedFirstTry: number;
  served: number; // within the retry budget
  refusedAttempts: number; // immediate 91s before being served (a full cap, working as meant)
  hungAttempts: number; // attempts that got neither a reply nor a close in time: must be 0
  medianMs: number; // handshake time (connect → 90) of the serving attempt
  p95Ms: number;
  maxMs: number;
  maxTimeToServeMs: number; // first attempt → served, retries included
}

const round = (x: number): number => Math.round(x * 10) / 10;

/**
 * `n` legitimate clients one after another, `gapMs` apart. A client refused with 91 retries
 * every 100 ms for up to `retryForMs`, as a real client facing a full proxy would.
 */
export async function probeLegit(proxy: ProxyProcess, n: number, gapMs: number, retryForMs = 0): Promise<Timings> {
  const times: number[] = [];
  const out = { tried: n, servedFirstTry: 0, served: 0, refusedAttempts: 0, hungAttempts: 0, maxTimeToServeMs: 0 };
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    for (let attempt = 0; attempt < 1000; attempt++) {
      const r = await runClient(proxy.port, proxy.echoPort, { userId: 'legit', timeoutMs: 15_000 });
      if (r.outcome === 'granted') {
        times.push(r.handshakeMs);
        out.served++;
        if (attempt === 0) out.servedFirstTry++;
        out.maxTimeToServeMs = Math.max(out.maxTimeToServeMs, round(performance.now() - started));
        break;
      }
      if (r.outcome === 'refused') out.refusedAttempts++;
      else out.hungAttempts++;
      if (performance.now() - started + 100 > retryForMs) break;
      await sleep(100);
    }
    await sleep(gapMs);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number =>
    times.length === 0 ? NaN : times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { ...out, medianMs: round(at(0.5)), p95Ms: round(at(0.95)), maxMs: round(times.at(-1) ?? NaN) };
}

export type SlowlorisStats = ReturnType<typeof startSlowloris>['stats'];

export interface BurstPlan {
  count: number;
  waves: number;
  waveGapMs: number;
  holdMs: number;
}

export interface Attacker {
  slowloris(count: number, byteMs: number, rampMs: number): Promise<void>;
  stopSlowloris(): Promise<SlowlorisStats | null>;
  burst(plan: BurstPlan): Promise<Record<Outcome, number>>;
  exit(): Promise<void>;
}

/** The attacking process, aimed at `port`; its bursts ask for CONNECT to `echoPort`. */
export async function startAttacker(port: number, echoPort: number): Promise<Attacker> {
  const child = fork(attackerPath, [`${port}:${echoPort}`], {
    env: cleanEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = (type: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>): void => {
        if (message.type !== type) return;
        child.removeListener('message', onMessage);
        resolve(message);
      };
      child.on('message', onMessage);
      void exited.then(() => reject(new Error(`attacker exited before ${type}`)));
    });
  await next('ready');
  return {
    async slowloris(count, byteMs, rampMs) {
      child.send({ type: 'slowloris', count, byteMs, rampMs });
      await next('slowloris-started');
    },
    async burst(plan) {
      child.send({ type: 'burst', plan });
      return (await next('burst-done')).outcomes as Record<Outcome, number>;
    },
    async stopSlowloris() {
      child.send({ type: 'slowloris-stop' });
      return (await next('slowloris-stopped')).stats as SlowlorisStats | null;
    },
    async exit() {
      if (child.connected) child.send({ type: 'exit' });
      await exited;
    },
  };
}

/**
 * `count` clients in `waves` waves `waveGapMs` apart (each wave all at once), each holding its
 * session `holdMs` when granted: the first waves fill the handshake and then the session cap,
 * the later ones meet a full proxy.
 */
export async function burst(port: number, echoPort: number, plan: BurstPlan): Promise<Record<Outcome, number>> {
  const outcomes: Record<Outcome, number> = {
    granted: 0,
    refused: 0,
    'closed-without-reply': 0,
    'connect-failed': 0,
    'no-reply-in-time': 0,
    'bad-echo': 0,
  };
  const clients = Array.from({ length: plan.count }, async (_, i) => {
    await sleep(Math.floor((i * plan.waves) / plan.count) * plan.waveGapMs);
    const localAddress = `127.0.${2 + ((i >> 8) % 8)}.${1 + (i % 250)}`;
    const r = await runClient(port, echoPort, { userId: `burst${i}`, localAddress, holdMs: plan.holdMs });
    outcomes[r.outcome]++;
  });
  await Promise.all(clients);
  return outcomes;
}

/** Waits (bounded) until the proxy process reports no session and no handshake. */
export async function settledProcess(proxy: ProxyProcess, ms: number): Promise<ProxySample> {
  const deadline = performance.now() + ms;
  const at = proxy.samples.length;
  while (performance.now() < deadline) {
    const s = proxy.latest();
    if (proxy.samples.length > at && s.sessions === 0 && s.handshakes === 0) return s;
    await sleep(50);
  }
  return proxy.latest();
}

export const megabytes = (bytes: number): number => Math.round(bytes / 1048576);
