// `proxy --workers N`: N proxy processes on one SOCKS port, for a pod with more than one core.
// Each worker is the whole proxy (its own event loop, rule source, limiter, logs, tracing) and
// listens with SO_REUSEPORT, so the kernel spreads new connections over the workers with no
// process in between. A supervisor (the process the user started) forks them, owns the ops port
// (/healthz, /readyz = every worker ready, /metrics = the workers' registries summed), restarts a
// worker that dies, and on SIGTERM/SIGINT tells every worker to drain, then exits when all have.
//
// Not Node's cluster module: its workers share every listen() through the primary, so BIND's
// per-session listeners (port 0) would all get one port, and the primary would accept and hand
// over each connection itself.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import client from 'prom-client';
import { startOpsServer } from '../ops/ops-server.ts';
import type { Logger } from '../telemetry/logging.ts';

/** Set in a worker's environment: its index (0..N-1), and the port every worker shares. */
const WORKER_ENV = 'SOCKS4_FLEET_WORKER';
const PORT_ENV = 'SOCKS4_FLEET_WORKER_PORT';
const METRICS_TIMEOUT_MS = 5_000;
/** More crashes than this within CRASH_WINDOW_MS and the supervisor gives up (exit 1). */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;

type ToWorker = { type: 'drain' } | { type: 'metrics'; id: number };
type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'ready'; ready: boolean }
  | { type: 'metrics'; id: number; metrics: client.MetricObjectWithValues<client.MetricValue<string>>[] };

/** The worker side, or null when this process is not a worker. */
export interface WorkerLink {
  readonly index: number;
  /** The shared port (worker 0 gets the one given, maybe 0, and the others the one it bound). */
  port(given: number): number;
  /** Hooks the worker up to the supervisor once it listens. */
  attach(options: { port: number; registry: client.Registry; isReady: () => boolean; drain: () => void }): void;
}

export function workerLink(env: NodeJS.ProcessEnv = process.env): WorkerLink | null {
  const index = env[WORKER_ENV];
  if (index === undefined || process.send === undefined) return null;
  return {
    index: Number(index),
    port: (given) => (env[PORT_ENV] === undefined ? given : Number(env[PORT_ENV])),
    attach({ port, registry, isReady, drain }) {
      const send = (message: FromWorker): void => void process.send?.(message);
      send({ type: 'listening', port });
      // Readiness changes with snapshots (fleet mode may start without one) and with draining.
      let last = isReady();
      send({ type: 'ready', ready: last });
      setInterval(() => {
        if (isReady() === last) return;
        last = !last;
        send({ type: 'ready', ready: last });
      }, 250).unref();
      process.on('message', (message: ToWorker) => {
        if (message.type === 'drain') drain();
        else if (message.type === 'metrics') {
          void registry.getMetricsAsJSON().then((metrics) => send({ type: 'metrics', id: message.id, metrics }));
        }
      });
      // A terminal's Ctrl-C reaches the whole process group, and the supervisor's drain message
      // follows: a second signal must not kill a worker that is already draining.
      process.on('SIGINT', () => {});
      process.on('SIGTERM', () => {});
      // The supervisor gone (killed): nobody would ever tell us to drain.
      process.once('disconnect', drain);
      // The channel must not keep a drained worker alive: it exits like a single proxy does.
      process.channel?.unref();
    },
  };
}

interface Worker {
  readonly index: number;
  child: ChildProcess;
  ready: boolean;
}

/**
 * The supervisor: forks `count` workers running `proxy <argv>`, serves the ops port, drains them
 * on SIGTERM/SIGINT. Resolves with the exit code.
 */
export async function runSupervisor(options: {
  argv: readonly string[];
  count: number;
  listenHost: string;
  ops: { host: string; port: number };
  logger: Logger;
}): Promise<number> {
  const { argv, count, logger } = options;
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const workers: Worker[] = [];
  let port = -1;
  let draining = false;
  let failed = false;
  let started = false; // until every worker listens, one that exits fails the start
  const crashes: number[] = [];
  let allExited: (() => void) | null = null;
  const pending = new Map<
    number,
    { left: number; results: client.MetricObjectWithValues<client.MetricValue<string>>[][]; done: () => void }
  >();
  let nextRequest = 0;

  const start = (index: number): Promise<number> => {
    const child = fork(main, ['proxy', ...argv], {
      env: { ...process.env, [WORKER_ENV]: String(index), ...(port >= 0 ? { [PORT_ENV]: String(port) } : {}) },
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker: Worker = { index, child, ready: false };
    workers[index] = worker;
    return new Promise((resolve, reject) => {
      child.on('message', (message: FromWorker) => {
        if (message.type === 'listening') resolve(message.port);
        else if (message.type === 'ready') worker.ready = message.ready;
        else if (message.type === 'metrics') {
          const request = pending.get(message.id);
          if (request === undefined) return;
          request.results.push(message.metrics);
          if (--request.left === 0) request.done();
        }
      });
      child.once('exit', (code, signal) => {
        worker.ready = false;
        reject(new Error(`worker ${index} exited (${code ?? signal}) before listening`));
        if (draining || !started) {
          if (code !== 0) failed = true;
          if (everyExited()) allExited?.();
          return;
        }
        const now = Date.now();
        crashes.push(now);
        while (crashes[0] !== undefined && crashes[0] < now - CRASH_WINDOW_MS) crashes.shift();
        logger.error({ worker: index, pid: child.pid, code, signal }, 'worker exited; starting another');
        if (crashes.length > MAX_CRASHES) {
          logger.error({ crashes: crashes.length, windowMs: CRASH_WINDOW_MS }, 'workers keep exiting; stopping');
          failed = true;
          stop();
          return;
        }
        start(index).catch(() => {}); // its own exit is logged the same way
      });
    });
  };

  // The aggregate registry: each worker's registry as JSON, summed (prom-client's cluster sums).
  const metricsRegistry = {
    contentType: client.Registry.PROMETHEUS_CONTENT_TYPE,
    async metrics(): Promise<string> {
      const live = workers.filter((w) => w.child.connected);
      const id = nextRequest++;
      const results = await new Promise<client.MetricObjectWithValues<client.MetricValue<string>>[][]>(
        (resolve, reject) => {
          const request = {
            left: live.length,
            results: [] as client.MetricObjectWithValues<client.MetricValue<string>>[][],
            done: () => resolve(request.results),
          };
          pending.set(id, request);
          const timer = setTimeout(() => reject(new Error('a worker did not answer for metrics')), METRICS_TIMEOUT_MS);
          request.done = () => {
            clearTimeout(timer);
            resolve(request.results);
          };
          if (live.length === 0) request.done();
          for (const w of live) w.child.send({ type: 'metrics', id } satisfies ToWorker);
        },
      ).finally(() => pending.delete(id));
      return client.AggregatorRegistry.aggregate(results).metrics();
    },
  } as unknown as client.Registry;

  const stop = (): void => {
    if (draining) return;
    draining = true;
    for (const w of workers) if (w.child.connected) w.child.send({ type: 'drain' } satisfies ToWorker);
  };
  const everyExited = (): boolean => workers.every((w) => w.child.exitCode !== null || w.child.signalCode !== null);
  const exited = (): Promise<void> =>
    everyExited() ? Promise.resolve() : new Promise((resolve) => (allExited = resolve));

  try {
    port = await start(0); // the port, when --listen asked for any free one (:0)
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1)));
  } catch (error) {
    // The worker has said why (a policy file that does not load, a port in use) on stderr/stdout.
    logger.error({ err: error }, 'a worker did not start; stopping');
    stop();
    await exited();
    return 1;
  }
  started = true;
  const opsServer = await startOpsServer({
    ...options.ops,
    registry: metricsRegistry,
    isReady: () => !draining && workers.every((w) => w.ready),
  });
  logger.info(
    {
      listen: `${options.listenHost}:${port}`,
      ops: `${opsServer.address.address}:${opsServer.address.port}`,
      workers: count,
    },
    'socks4-fleet proxy listening',
  );

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal, workers: count }, 'draining');
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      stop();
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    void exited().then(resolve); // every worker gave up (see MAX_CRASHES)
  });
  await exited();
  await opsServer.close();
  logger.info({}, 'drained; exiting');
  return failed ? 1 : 0;
}
