// What every session of one server shares: the rules, the limiter, the resolver and the knobs.
import type { Limiter } from '../limits/types.ts';
import type { FleetEndpoints } from '../policy/fleet-endpoints.ts';
import type { RuleSnapshot } from '../rules/types.ts';
import { DEFAULT_IDENT_TIMEOUT_MS, IDENT_PORT } from './ident.ts';
import type { connectUpstream, Resolver } from './upstream.ts';

export interface ServerConfig {
  handshakeTimeoutMs: number; // reading the request, accept → request parsed
  dnsTimeoutMs: number; // one SOCKS4a name resolution
  limitsTimeoutMs: number; // the limiter's answer (Redis round trip)
  connectTimeoutMs: number; // upstream connect; the spec's 2 minutes by default
  bindAcceptTimeoutMs: number; // BIND: wait for the application server's connection
  idleTimeoutMs: number; // relay idle timeout; 0 = off
  identTimeoutMs: number;
  identPort: number; // 113; configurable for tests
  maxSessions: number; // open sessions of any state
  maxHandshakes: number; // sessions reading their request
  maxPending: number; // sessions past their request, not yet relaying (decisions, connects, BIND peers)
  sourceShare: number; // fraction of each pool one client address may hold
  proxyProtocol: boolean; // expect a PROXY protocol v1/v2 header before the SOCKS request
  bindAddress: string | null; // address BIND listeners use; null = the address the client reached
  drainGraceMs: number; // SIGTERM: how long running sessions may go on
}

/** The one place these defaults are written: the CLI's flags, --help and docs read them from here. */
export const defaultServerConfig: ServerConfig = {
  handshakeTimeoutMs: 10_000,
  dnsTimeoutMs: 5_000,
  limitsTimeoutMs: 2_000,
  connectTimeoutMs: 120_000,
  bindAcceptTimeoutMs: 120_000,
  idleTimeoutMs: 0,
  identTimeoutMs: DEFAULT_IDENT_TIMEOUT_MS,
  identPort: IDENT_PORT,
  maxSessions: 10_000,
  maxHandshakes: 1_000,
  maxPending: 1_000,
  sourceShare: 0.25,
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
  /** The fleet's Redis, Kubernetes API and --guard-endpoint addresses, kept current by discovery. */
  fleet?: FleetEndpoints;
  /** The namespace of the pod a client address belongs to (fleet mode); absent: no pods known. */
  namespaceOf?: (address: string) => string | null;
  config: ServerConfig;
}
