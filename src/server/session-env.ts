// What every session of one server shares: the rules, the limiter, the resolver and the knobs.
import type { Limiter } from '../limits/types.ts';
import type { RuleSnapshot } from '../rules/types.ts';
import type { connectUpstream, Resolver } from './upstream.ts';

export interface ServerConfig {
  handshakeTimeoutMs: number; // whole handshake, accept → request decided
  connectTimeoutMs: number; // upstream connect; the spec's 2 minutes by default
  bindAcceptTimeoutMs: number; // BIND: wait for the application server's connection
  idleTimeoutMs: number; // relay idle timeout; 0 = off
  identTimeoutMs: number;
  identPort: number; // 113; configurable for tests
  maxSessions: number; // open sessions of any state
  maxHandshakes: number; // sessions not yet relaying
  proxyProtocol: boolean; // expect a PROXY protocol v1/v2 header before the SOCKS request
  bindAddress: string | null; // address BIND listeners use; null = the address the client reached
  drainGraceMs: number; // SIGTERM: how long running sessions may go on
}

export const defaultServerConfig: ServerConfig = {
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 120_000,
  bindAcceptTimeoutMs: 120_000,
  idleTimeoutMs: 0,
  identTimeoutMs: 10_000,
  identPort: 113,
  maxSessions: 10_000,
  maxHandshakes: 1_000,
  proxyProtocol: false,
  bindAddress: null,
  drainGraceMs: 30_000,
};

export interface SessionEnv {
  rules: () => RuleSnapshot | null;
  limiter: Limiter;
  resolve: Resolver;
  /** How upstream connections are dialled; connectUpstream unless a test must keep traffic local. */
  dial?: typeof connectUpstream;
  selfAddresses: ReadonlySet<string>;
  /** The namespace of the pod a client address belongs to (fleet mode); absent: no pods known. */
  namespaceOf?: (address: string) => string | null;
  config: ServerConfig;
}
