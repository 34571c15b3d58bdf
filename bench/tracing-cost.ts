// Handshake-rate cost of tracing. An in-process proxy (the test helper's startProxy) runs on the
// main thread; a worker thread runs the load (N concurrent clients doing CONNECT → small echo →
// close against a local echo server) and a local OTLP/HTTP sink, so the proxy's event loop is its
// own. Three modes, interleaved round by round so machine noise hits all alike:
//   off   no OTEL_* configuration: nothing subscribes
//   100%  parentbased_traceidratio 1.0, BatchSpanProcessor → OTLP http/protobuf → local sink
//   10%   the same at ratio 0.1
// Prints handshakes/s and proxy-thread CPU per handshake, each also as a ratio to the same round's
// "off" run (median over rounds), and spans recorded/exported/dropped.
// Run: scripts/node bench/tracing-cost.ts [--seconds 2] [--rounds 10] [--clients 32]  (about a minute)
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { startTracing, type Tracing } from '../src/telemetry/tracing.ts';
import { socks4Request, startEchoServer, startProxy } from '../test/helpers/servers.ts';

const POLICY = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: bench, namespace: bench}
spec:
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;
const PAYLOAD = Buffer.from('ping-0123456789');

interface RunRequest {
  proxyPort: number;
  seconds: number;
  clients: number;
}
interface RunResult {
  handshakes: number;
  failures: number;
  elapsedMs: number;
}
interface Ready {
  echoPort: number;
  sinkUrl: string;
}

// ---------------------------------------------------------------- worker: load and sinks
async function worker(): Promise<void> {
  const echo = await startEchoServer();
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  const port = (sink.address() as net.AddressInfo).port;
  parentPort!.postMessage({ echoPort: echo.port, sinkUrl: `http://127.0.0.1:${port}/v1/traces` } satisfies Ready);

  const request = socks4Request(1, echo.port, '127.0.0.1', 'bench');
  /** One session; resolves true when the reply was 90 and the payload came back. */
  const session = (proxyPort: number): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: proxyPort, noDelay: true });
      let received: Buffer = Buffer.alloc(0);
      let granted = false;
      let echoed = false;
      socket.on('error', () => {});
      socket.once('connect', () => socket.write(request));
      socket.on('data', (chunk: Buffer) => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        if (!granted && received.length >= 8) {
          granted = received[1] === 90;
          received = received.subarray(8);
          if (!granted) return void socket.destroy();
          socket.write(PAYLOAD);
        }
        if (granted && !echoed && received.length >= PAYLOAD.length) {
          echoed = received.subarray(0, PAYLOAD.length).equals(PAYLOAD);
          socket.end();
        }
      });
      socket.once('close', () => resolve(granted && echoed));
    });

  parentPort!.on('message', async (message: RunRequest | 'exit') => {
    if (message === 'exit') {
      await echo.close();
      sink.closeAllConnections();
      sink.close();
      parentPort!.close();
      return;
    }
    const started = performance.now();
    const deadline = started + message.seconds * 1000;
    let handshakes = 0;
    let failures = 0;
    const loop = async (): Promise<void> => {
      while (performance.now() < deadline) {
        if (await session(message.proxyPort)) handshakes++;
        else failures++;
      }
    };
    await Promise.all(Array.from({ length: message.clients }, loop));
    parentPort!.postMessage({ handshakes, failures, elapsedMs: performance.now() - started } satisfies RunResult);
  });
}

// ---------------------------------------------------------------- main: the proxy and the modes
type Mode = 'off' | '100%' | '10%';
const RATIO: Record<Mode, number | null> = { off: null, '100%': 1, '10%': 0.1 };

/** Counts what reaches the exporter, so drops in the batch queue show up in the figures. */
function countingExporter(inner: SpanExporter, counts: { exported: number }): SpanExporter {
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      counts.exported += spans.length;
      inner.export(spans, done);
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

async function startMode(
  mode: Mode,
  sinkUrl: string,
  counts: { recorded: number; exported: number },
): Promise<Tracing | null> {
  const ratio = RATIO[mode];
  if (ratio === null) return null;
  process.env.OTEL_TRACES_SAMPLER = 'parentbased_traceidratio';
  process.env.OTEL_TRACES_SAMPLER_ARG = String(ratio);
  return startTracing({
    serviceName: 'socks4-fleet-bench',
    spanProcessors: [
      { onStart: () => {}, onEnd: () => void counts.recorded++, forceFlush: async () => {}, shutdown: async () => {} },
      new BatchSpanProcessor({ exporter: countingExporter(new OTLPTraceExporter({ url: sinkUrl }), counts) }),
    ],
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '10' },
      clients: { type: 'string', default: '32' },
      json: { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const clients = Number(values.clients);
  for (const key of Object.keys(process.env)) if (key.startsWith('OTEL_')) delete process.env[key];

  const load = new Worker(new URL(import.meta.url), { workerData: 'load' });
  const [ready] = (await once(load, 'message')) as [Ready];
  const proxy = await startProxy(POLICY, { config: { maxHandshakes: 10_000, maxSessions: 100_000 } });
  const run = async (mode: Mode, runSeconds: number) => {
    const counts = { recorded: 0, exported: 0 };
    const tracing = await startMode(mode, ready.sinkUrl, counts);
    const cpu = process.threadCpuUsage();
    load.postMessage({ proxyPort: proxy.port, seconds: runSeconds, clients } satisfies RunRequest);
    const [result] = (await once(load, 'message')) as [RunResult];
    const used = process.threadCpuUsage(cpu);
    await tracing?.shutdown(); // the final flush is outside the measured window
    return { ...result, cpuUs: used.user + used.system, ...counts };
  };

  const modes: Mode[] = ['off', '100%', '10%'];
  for (const mode of modes) await run(mode, Math.min(1, seconds)); // warm-up, not counted
  const results = new Map<Mode, Awaited<ReturnType<typeof run>>[]>(modes.map((m) => [m, []]));
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so no mode always runs first or last.
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(i + round) % modes.length]!;
      const r = await run(mode, seconds);
      results.get(mode)!.push(r);
      process.stderr.write(
        `round ${round + 1} ${mode.padEnd(4)} ${(r.handshakes / (r.elapsedMs / 1000)).toFixed(0)} handshakes/s\n`,
      );
    }
  }
  load.postMessage('exit');
  await proxy.close();

  const rate = (r: RunResult): number => r.handshakes / (r.elapsedMs / 1000);
  const cpuPer = (r: { cpuUs: number; handshakes: number }): number => r.cpuUs / r.handshakes;
  const off = results.get('off')!;
  if (!values.json)
    console.log(
      `\ntracing cost: ${clients} clients, ${rounds} rounds × ${seconds}s per mode, CONNECT → ${PAYLOAD.length}-byte echo → close`,
    );
  if (!values.json)
    console.log('ratios are per round against the same round\'s "off" run (median over rounds): machine noise cancels');
  if (!values.json)
    console.log(
      'mode   handshakes/s median (min–max)   rate vs off   proxy-thread CPU µs/handshake   CPU vs off   spans recorded / exported / dropped   failures',
    );
  const summary: Record<string, unknown> = {};
  for (const mode of modes) {
    const rs = results.get(mode)!;
    const rates = rs.map(rate);
    const rateRatio = median(rs.map((r, i) => rate(r) / rate(off[i]!)));
    const cpuRatio = median(rs.map((r, i) => cpuPer(r) / cpuPer(off[i]!)));
    const recorded = rs.reduce((n, r) => n + r.recorded, 0);
    const exported = rs.reduce((n, r) => n + r.exported, 0);
    const failures = rs.reduce((n, r) => n + r.failures, 0);
    summary[mode] = {
      rate: median(rates),
      rateRatio,
      cpuUsPerHandshake: median(rs.map(cpuPer)),
      cpuRatio,
      recorded,
      exported,
      failures,
    };
    if (values.json) continue;
    console.log(
      `${mode.padEnd(6)} ${median(rates).toFixed(0).padStart(8)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})`.padEnd(
        38,
      ) +
        `${rateRatio.toFixed(3).padStart(11)}   ${median(rs.map(cpuPer)).toFixed(1).padStart(29)}   ${cpuRatio.toFixed(3).padStart(10)}   ` +
        `${`${recorded} / ${exported} / ${recorded - exported}`.padStart(35)}   ${String(failures).padStart(8)}`,
    );
  }
  if (values.json)
    console.log(
      JSON.stringify({
        command: `scripts/node bench/tracing-cost.ts --rounds ${rounds} --seconds ${seconds} --clients ${clients}`,
        modes: summary,
      }),
    );
}

if (isMainThread) await main();
else if (workerData === 'load') await worker();
