// The proxy under attack, in its own process: its file descriptors, memory and event loop are its
// own, so the figures the exhaustion tests report are the proxy's and not the attackers'.
// Started by exhaustion-harness.ts with a JSON config argument; talks over the IPC channel:
//   → {type: 'ready', port, echoPort}
//   → {type: 'sample', rss, heapUsed, sessions, handshakes, peakSessions, peakHandshakes, lagMs}
//   ← {type: 'stop'}  drains, exits 0
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createMemoryLimiter } from '../../src/limits/memory-limiter.ts';
import { snapshotFromText } from '../../src/rules/file-source.ts';
import { createProxyServer } from '../../src/server/proxy-server.ts';
import { defaultServerConfig, type ServerConfig } from '../../src/server/session-env.ts';
import { resolveIPv4 } from '../../src/server/upstream.ts';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';

export interface ProxyProcessConfig {
  server: Partial<ServerConfig>;
  sampleMs: number;
}

export interface ProxySample {
  type: 'sample';
  rss: number;
  heapUsed: number;
  sessions: number;
  handshakes: number;
  peakSessions: number;
  peakHandshakes: number;
  lagMs: number; // event loop delay, p99 since the previous sample
  legitEnds: Record<string, number>; // sessions from 127.0.0.1 (the legitimate client) by reason
}

const config = JSON.parse(process.argv[2] ?? '{}') as ProxyProcessConfig;
const send = (message: object): void => void process.send?.(message);

// The upstream for legitimate and burst clients: echoes, in this process so the attacker's
// process keeps its descriptors for attacking.
const echoSockets = new Set<net.Socket>();
const echo = net.createServer({ allowHalfOpen: true }, (socket) => {
  echoSockets.add(socket);
  socket.on('error', () => {});
  socket.on('close', () => echoSockets.delete(socket));
  socket.pipe(socket);
});
await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
const echoPort = (echo.address() as net.AddressInfo).port;

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: exhaustion, namespace: reliability}
spec:
  rules:
    - {name: echo, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"], ports: ["${echoPort}"]}}
`;
const snapshot = snapshotFromText(policy, 'exhaustion');
const limiter = createMemoryLimiter();
const server = createProxyServer({
  rules: () => snapshot,
  limiter,
  resolve: resolveIPv4,
  selfAddresses: new Set(),
  config: { ...defaultServerConfig, ...config.server },
});
const { port } = await server.listen('127.0.0.1', 0);

// Exact peaks: both counts only grow when a session starts, and it announces itself then.
let peakSessions = 0;
let peakHandshakes = 0;
channels.sessionStart.subscribe(() => {
  peakSessions = Math.max(peakSessions, server.activeSessions);
  peakHandshakes = Math.max(peakHandshakes, server.handshakesInProgress);
});

// Why sessions of the legitimate client (the only one on 127.0.0.1) ended: 'ok' when granted.
const legitEnds: Record<string, number> = {};
channels.sessionEnd.subscribe((message) => {
  const s = message as SessionInfo;
  if (s.clientAddress !== '127.0.0.1') return;
  const key = s.replyCode === 90 ? 'ok' : (s.reason ?? 'none');
  legitEnds[key] = (legitEnds[key] ?? 0) + 1;
});

const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
const sampler = setInterval(() => {
  const memory = process.memoryUsage();
  send({
    type: 'sample',
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    sessions: server.activeSessions,
    handshakes: server.handshakesInProgress,
    peakSessions,
    peakHandshakes,
    lagMs: lag.percentile(99) / 1e6,
    legitEnds,
  } satisfies ProxySample);
  lag.reset();
}, config.sampleMs);

process.on('message', (message: { type: string }) => {
  if (message.type !== 'stop') return;
  clearInterval(sampler);
  void server.drain(0).then(async () => {
    await limiter.close?.();
    for (const socket of echoSockets) socket.destroy();
    echo.close();
    process.disconnect?.();
  });
});
// The parent went away without a stop: do not linger as an orphan.
process.on('disconnect', () => process.exit(0));

send({ type: 'ready', port, echoPort });
