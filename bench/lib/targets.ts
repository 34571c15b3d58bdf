// What the benchmark measures side by side: no proxy (direct), Dante, and socks4-fleet in its
// three modes. Modes the code base cannot run yet (Redis, tracing) are detected, not assumed, and
// reported as "n/a" with the reason.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REDIS_SERVER, startRedis } from '../../test/helpers/redis.ts';
import { runLoadgen, type LoadgenTarget } from './loadgen.ts';
import { benchRoot, childEnv, cliPath, launcherPath, repoRoot } from './paths.ts';
import { canConnect, freePort, httpStatus, spawnManaged, waitUntil, type Managed } from './processes.ts';

const run = promisify(execFile);

export const TargetId = {
  Direct: 'direct',
  Floor: 'floor',
  Dante: 'dante',
  Embedded: 'fleet-embedded',
  Redis: 'fleet-redis',
  RedisTracing: 'fleet-redis-tracing',
} as const;
export type TargetId = (typeof TargetId)[keyof typeof TargetId];

export const targetLabels: Record<TargetId, string> = {
  direct: 'direct',
  floor: 'Node floor',
  dante: 'Dante',
  'fleet-embedded': 'fleet embedded',
  'fleet-redis': 'fleet Redis',
  'fleet-redis-tracing': 'fleet Redis+tracing',
};

export interface Target {
  readonly id: TargetId;
  /** Null when the target runs; otherwise why it does not ("n/a (not built yet)"). */
  readonly unavailable: string | null;
  readonly loadgen: LoadgenTarget;
  /** Memory per idle session: RSS for one process, PSS summed over the tree for forking servers. */
  readonly memoryMetric: 'rss' | 'pss' | null;
  /** Extra facts for the JSON (exported span batches, Dante's port). */
  details(): Record<string, unknown>;
  stop(): Promise<void>;
}

export const DANTED = '/usr/sbin/danted';
const POLICY_FILE = path.join(benchRoot, 'policy.yaml');

function unavailable(id: TargetId, reason: string): Target {
  return {
    id,
    unavailable: reason,
    loadgen: { proxy: null, pids: [], auxPids: [] },
    memoryMetric: null,
    details: () => ({}),
    stop: async () => {},
  };
}

export function direct(): Target {
  return {
    id: TargetId.Direct,
    unavailable: null,
    loadgen: { proxy: null, pids: [], auxPids: [] },
    memoryMetric: null,
    details: () => ({}),
    stop: async () => {},
  };
}

/**
 * Dante binds its listener without SO_REUSEADDR, so a port some TIME_WAIT socket still holds
 * fails: ports come from below the ephemeral range, and a failed bind tries the next one.
 */
export async function startDante(): Promise<Target> {
  if (!existsSync(DANTED))
    return unavailable(TargetId.Dante, `n/a (${DANTED} not installed: apt-get install dante-server)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-bench-dante-'));
  const template = readFileSync(path.join(benchRoot, 'danted.conf'), 'utf8');
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const conf = path.join(dir, 'danted.conf');
    writeFileSync(conf, template.replaceAll('@PORT@', String(port)));
    const dante = spawnManaged(DANTED, ['-f', conf, '-N', '1', '-p', path.join(dir, 'danted.pid')]);
    try {
      await waitUntil('danted', dante, () => canConnect(port), 10_000);
    } catch (error) {
      lastError = error;
      await dante.stop();
      continue;
    }
    return {
      id: TargetId.Dante,
      unavailable: null,
      loadgen: { proxy: `127.0.0.1:${port}`, pids: [dante.pid], auxPids: [] },
      memoryMetric: 'pss',
      details: () => ({ port, processModel: 'forking (mother, negotiate, request and io children)' }),
      async stop() {
        await dante.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`danted did not start: ${String(lastError)}`);
}

interface FleetProcess {
  readonly managed: Managed;
  readonly port: number;
}

/** Options every socks4-fleet target takes: Node flags for profiling (bench/profile.ts). */
export interface FleetOptions {
  readonly nodeFlags?: readonly string[];
  /** Check that spans really arrive before calling tracing available (default true). */
  readonly probeTracing?: boolean;
  /** Log level (default warn: no session lines) and where stdout goes (default: the harness). */
  readonly logLevel?: string;
  readonly stdoutFd?: number;
  /** More proxy arguments (e.g. --workers 2). */
  readonly extraArgs?: readonly string[];
  /** Another checkout's launcher (a before/after comparison in one run); default this one's. */
  readonly checkout?: string;
}

async function startFleetProxy(
  args: readonly string[],
  env: Record<string, string>,
  options: FleetOptions,
): Promise<FleetProcess> {
  const port = await freePort();
  const opsPort = await freePort();
  // Started as users start it, through the launcher and the Node flags it sets (it execs Node, so
  // the pid measured is the proxy's). Profiling flags go in NODE_OPTIONS.
  const nodeOptions: Record<string, string> =
    options.nodeFlags === undefined ? {} : { NODE_OPTIONS: options.nodeFlags.join(' ') };
  const launcher =
    options.checkout === undefined ? launcherPath : path.join(options.checkout, 'scripts', 'socks4-fleet');
  const managed = spawnManaged(
    launcher,
    [
      'proxy',
      '--listen',
      `127.0.0.1:${port}`,
      '--ops-listen',
      `127.0.0.1:${opsPort}`,
      '--log-level',
      options.logLevel ?? 'warn',
      ...args,
      ...(options.extraArgs ?? []),
    ],
    {
      cwd: options.checkout ?? repoRoot,
      env: childEnv({ ...env, ...nodeOptions }),
      ...(options.stdoutFd === undefined ? {} : { stdio: ['ignore', options.stdoutFd, 'pipe'] }),
    },
  );
  // Ready means listening and holding a rules snapshot (/readyz), in every mode.
  // A busy two-core machine can take tens of seconds to start a proxy (or several workers).
  await waitUntil('socks4-fleet proxy', managed, async () => (await httpStatus(opsPort, '/readyz')) === 200, 90_000);
  return { managed, port };
}

async function proxyHelp(): Promise<string> {
  const { stdout } = await run(process.execPath, [cliPath, 'proxy', '--help'], { cwd: repoRoot, env: childEnv() });
  return stdout;
}

export async function startEmbedded(options: FleetOptions = {}): Promise<Target> {
  const proxy = await startFleetProxy(['--policy-file', POLICY_FILE], {}, options);
  return {
    id: TargetId.Embedded,
    unavailable: null,
    loadgen: { proxy: `127.0.0.1:${proxy.port}`, pids: [proxy.managed.pid], auxPids: [] },
    memoryMetric: 'rss',
    details: () => ({ policyFile: path.relative(repoRoot, POLICY_FILE) }),
    stop: () => proxy.managed.stop(),
  };
}

/** The Node floor (bench/floor-relay.ts): a bare CONNECT relay, with the launcher's Node flags. */
export async function startFloor(): Promise<Target> {
  const port = await freePort();
  const managed = spawnManaged(
    process.execPath,
    ['--max-semi-space-size=4', path.join(benchRoot, 'floor-relay.ts'), String(port)],
    {
      cwd: repoRoot,
      env: childEnv(),
    },
  );
  await waitUntil('floor relay', managed, () => canConnect(port), 10_000);
  return {
    id: TargetId.Floor,
    unavailable: null,
    loadgen: { proxy: `127.0.0.1:${port}`, pids: [managed.pid], auxPids: [] },
    memoryMetric: 'rss',
    details: () => ({ what: 'bench/floor-relay.ts' }),
    stop: () => managed.stop(),
  };
}

/** Fleet mode: rules published with `policy push`, all three limits of the matching rule in Redis. */
export async function startRedisMode(tracing: boolean, options: FleetOptions = {}): Promise<Target> {
  const id = tracing ? TargetId.RedisTracing : TargetId.Redis;
  if (!(await proxyHelp()).includes('--redis-url'))
    return unavailable(id, 'n/a (not built yet: proxy has no --redis-url)');
  if (!existsSync(REDIS_SERVER)) return unavailable(id, `n/a (${REDIS_SERVER} not installed)`);
  if (tracing && !existsSync(path.join(repoRoot, 'src', 'telemetry', 'tracing.ts'))) {
    return unavailable(id, 'n/a (not built yet: no src/telemetry/tracing.ts)');
  }
  const redis = await startRedis(); // the tests' server: loopback, a free port, nothing persisted
  const sink = tracing ? await startOtlpSink() : null;
  const cleanup = async (): Promise<void> => {
    await redis.stop();
    await sink?.close();
  };
  let proxy: FleetProcess;
  try {
    await run(process.execPath, [cliPath, 'policy', 'push', POLICY_FILE, '--redis-url', redis.url], {
      cwd: repoRoot,
      env: childEnv(),
    });
    proxy = await startFleetProxy(['--redis-url', redis.url], sink === null ? {} : sink.env, options);
  } catch (error) {
    await cleanup();
    throw error;
  }
  const target: Target = {
    id,
    unavailable: null,
    loadgen: { proxy: `127.0.0.1:${proxy.port}`, pids: [proxy.managed.pid], auxPids: [redis.pid] },
    memoryMetric: 'rss',
    details: () => ({ redis: redis.url, ...(sink === null ? {} : { otlp: sink.stats() }) }),
    async stop() {
      await proxy.managed.stop();
      await cleanup();
    },
  };
  if (sink === null || options.probeTracing === false) return target;
  // Tracing counts as built only when spans really arrive: a proxy that ignores OTEL_* is n/a.
  const exported = await probeTracing(target, sink);
  if (exported) return target;
  await target.stop();
  return unavailable(id, 'n/a (not built yet: the proxy exported no spans with OTEL_* set)');
}

interface OtlpSink {
  readonly env: Record<string, string>;
  /** sessionSpans: the session (SERVER) spans received, one per session: none may be lost. */
  stats(): { requests: number; bytes: number; sessionSpans: number };
  close(): Promise<void>;
}

const SESSION_SPAN_NAMES = new Set(['socks4', 'socks4 CONNECT', 'socks4 BIND']);

/**
 * Session spans in one OTLP/protobuf ExportTraceServiceRequest: resource_spans (1) → scope_spans
 * (2) → spans (2) → name (5). A minimal protobuf walk, so the harness needs no decoder.
 */
export function countSessionSpans(body: Buffer): number {
  const fields = (start: number, end: number, visit: (field: number, from: number, to: number) => void): void => {
    let at = start;
    const varint = (): number => {
      let value = 0;
      for (let shift = 0; ; shift += 7) {
        const byte = body[at++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return value;
      }
    };
    while (at < end) {
      const key = varint();
      const wire = key & 7;
      if (wire === 0) varint();
      else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else if (wire === 2) {
        const length = varint();
        visit(Math.floor(key / 8), at, at + length);
        at += length;
      } else throw new Error(`OTLP sink: protobuf wire type ${wire} unexpected`);
    }
  };
  let count = 0;
  fields(
    0,
    body.length,
    (f, a, b) =>
      f === 1 &&
      fields(
        a,
        b,
        (f, a, b) =>
          f === 2 &&
          fields(a, b, (f, a, b) => {
            if (f === 2)
              fields(
                a,
                b,
                (f, a, b) => void (f === 5 && SESSION_SPAN_NAMES.has(body.toString('utf8', a, b)) && count++),
              );
          }),
      ),
  );
  return count;
}

/** An OTLP/HTTP receiver that accepts and counts export requests (protobuf or JSON) and drops them. */
async function startOtlpSink(): Promise<OtlpSink> {
  let requests = 0;
  let bytes = 0;
  let sessionSpans = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (req.url?.startsWith('/v1/traces') === true) requests++;
      const json = req.headers['content-type']?.includes('json') === true;
      if (!json && req.url?.startsWith('/v1/traces') === true) sessionSpans += countSessionSpans(Buffer.concat(chunks));
      res
        .writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' })
        .end(json ? '{}' : '');
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    env: {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: 'socks4-fleet-bench',
    },
    stats: () => ({ requests, bytes, sessionSpans }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A few sessions, then up to 12 s (the SDK batches every 5 s by default) for an export to land. */
async function probeTracing(target: Target, sink: OtlpSink): Promise<boolean> {
  await runLoadgen('handshake', target.loadgen, { clients: 2, warmup: '0s', duration: '300ms' });
  const deadline = Date.now() + 12_000;
  while (Date.now() < deadline) {
    if (sink.stats().requests > 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}
