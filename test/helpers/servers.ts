// Real peers for the proxy tests: an HTTP server, an echo server, a proxy built from a policy
// text, and raw SOCKS4 exchanges. Everything listens on loopback ports the kernel picks.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { createMemoryLimiter } from '../../src/limits/memory-limiter.ts';
import type { Limiter } from '../../src/limits/types.ts';
import { snapshotFromText } from '../../src/rules/file-source.ts';
import type { RuleSnapshot } from '../../src/rules/types.ts';
import { createProxyServer, type ProxyServer } from '../../src/server/proxy-server.ts';
import { defaultServerConfig, type ServerConfig, type SessionEnv } from '../../src/server/session-env.ts';
import { connectUpstream, resolveIPv4, type Resolver } from '../../src/server/upstream.ts';

/** The smallest policy: CONNECT and BIND to 127.0.0.1 only, from anyone. */
export const allowLoopbackPolicy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: p}
spec:
  rules:
    - {name: r, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

export interface Closable {
  port: number;
  close(): Promise<void>;
}

export async function startHttpServer(body = 'hello from upstream\n', host = '127.0.0.1'): Promise<Closable> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-path': req.url ?? '' }).end(body);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startEchoServer(host = '127.0.0.1'): Promise<Closable & { connections: net.Socket[] }> {
  const connections: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    connections.push(socket);
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise((resolve) => {
        for (const socket of connections) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TestProxy extends Closable {
  server: ProxyServer;
  setPolicy(yaml: string): void;
}

export async function startProxy(
  policyYaml: string,
  options: {
    config?: Partial<ServerConfig>;
    resolve?: Resolver;
    limiter?: Limiter;
    selfAddresses?: string[];
    dial?: SessionEnv['dial'];
    /** The listener's address (default 127.0.0.1). */
    host?: string;
  } = {},
): Promise<TestProxy> {
  let snapshot: RuleSnapshot = snapshotFromText(policyYaml, 'test-policy');
  const limiter = options.limiter ?? createMemoryLimiter();
  const server = createProxyServer({
    rules: () => snapshot,
    limiter,
    resolve: options.resolve ?? resolveIPv4,
    selfAddresses: new Set(options.selfAddresses ?? []),
    ...(options.dial === undefined ? {} : { dial: options.dial }),
    config: { ...defaultServerConfig, drainGraceMs: 1000, ...options.config },
  });
  const address = await server.listen(options.host ?? '127.0.0.1', 0);
  return {
    port: address.port,
    server,
    setPolicy(yaml) {
      snapshot = snapshotFromText(yaml, 'test-policy');
    },
    async close() {
      await server.drain(0);
      await limiter.close();
    },
  };
}

/**
 * A dialler that keeps tests on this machine: loopback destinations are dialled for real; any
 * other address is recorded and refused without a packet leaving (a regression in the guard
 * then shows as a recorded address and a failed assertion, never as traffic to the network).
 */
export function loopbackOnlyDial(escaped: string[]): NonNullable<SessionEnv['dial']> {
  return (ip, port, timeoutMs) => {
    if (ip.startsWith('127.')) return connectUpstream(ip, port, timeoutMs);
    escaped.push(`${ip}:${port}`);
    return connectUpstream('127.0.0.1', 0, timeoutMs); // port 0: refused at once, locally
  };
}

/** SOCKS4 request bytes, built by hand so tests do not depend on the codec they test. */
export function socks4Request(command: 1 | 2, port: number, ip: string, userId = '', host?: string): Buffer {
  const head = Buffer.alloc(8);
  head[0] = 4;
  head[1] = command;
  head.writeUInt16BE(port, 2);
  const octets = (host === undefined ? ip : '0.0.0.1').split('.').map(Number);
  octets.forEach((octet, i) => (head[4 + i] = octet));
  const parts = [head, Buffer.from(userId, 'utf8'), Buffer.from([0])];
  if (host !== undefined) parts.push(Buffer.from(host, 'utf8'), Buffer.from([0]));
  return Buffer.concat(parts);
}

export interface RawExchange {
  socket: net.Socket;
  /** Everything received until `bytes` arrived (or the socket closed). */
  read(bytes: number, timeoutMs?: number): Promise<Buffer>;
  /** Resolves when the proxy closed the connection (end or reset). */
  closed: Promise<void>;
}

export async function connectRaw(port: number, localAddress?: string): Promise<RawExchange> {
  const socket = net.connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
  socket.on('error', () => {});
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  let ended = false;
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    waiter?.();
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      ended = true;
      waiter?.();
      resolve();
    }),
  );
  return {
    socket,
    closed,
    async read(bytes, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < bytes && !ended && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          waiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        waiter = null;
      }
      const out = received.subarray(0, bytes);
      received = received.subarray(out.length);
      return out;
    },
  };
}

/** One whole request/reply: sends `request`, returns the 8-byte reply (or less, if closed). */
export async function exchange(port: number, request: Buffer): Promise<{ reply: Buffer; raw: RawExchange }> {
  const raw = await connectRaw(port);
  raw.socket.write(request);
  return { reply: await raw.read(8), raw };
}
