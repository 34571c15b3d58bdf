// One registry of refusal and failure reasons. The strings are stable: they appear in logs,
// span attributes and the `reason` metric label, and users alert on them.

export const Reason = {
  // Malformed handshakes (codec).
  BadVersion: 'BadVersion', // VN != 4: closed without a reply (it is not our protocol)
  BadCommand: 'BadCommand',
  ZeroPort: 'ZeroPort',
  UserIdTooLong: 'UserIdTooLong',
  HostnameTooLong: 'HostnameTooLong',
  EmptyHostname: 'EmptyHostname',
  // A SOCKS4a name that is not a host name after IDNA/UTS-46 conversion (controls, spaces, empty
  // labels, over 253 characters, a number that is not an IPv4 address, IPv6 other than mapped).
  InvalidHostname: 'InvalidHostname',
  ProxyHeaderInvalid: 'ProxyHeaderInvalid',
  HandshakeTimeout: 'HandshakeTimeout',
  // Policy.
  NoRuleMatched: 'NoRuleMatched',
  RuleDenied: 'RuleDenied',
  GuardedDestination: 'GuardedDestination',
  NoSnapshot: 'NoSnapshot',
  // Limits.
  RateLimited: 'RateLimited',
  ConcurrencyLimited: 'ConcurrencyLimited',
  LimiterUnavailable: 'LimiterUnavailable',
  // Ident (RFC 1413): the only reasons that map to 92 and 93.
  IdentUnreachable: 'IdentUnreachable',
  IdentMismatch: 'IdentMismatch',
  // Upstream and BIND.
  DnsFailed: 'DnsFailed',
  UpstreamRefused: 'UpstreamRefused',
  UpstreamTimeout: 'UpstreamTimeout',
  UpstreamUnreachable: 'UpstreamUnreachable',
  BindFailed: 'BindFailed',
  BindTimeout: 'BindTimeout',
  BindPeerMismatch: 'BindPeerMismatch',
  // Server capacity and lifecycle.
  Draining: 'Draining',
  TooManySessions: 'TooManySessions',
  TooManyHandshakes: 'TooManyHandshakes',
  TooManyPending: 'TooManyPending', // the pending pool (decisions, connects, BIND peers) was full: the oldest yielded
  SourceShareExceeded: 'SourceShareExceeded', // one client address held its share of a slot pool
  DnsOverloaded: 'DnsOverloaded', // too many DNS queries in flight (overall or from this source)
  ClientAborted: 'ClientAborted',
  // A bug: an exception no step of the session expected. Never blamed on the client or upstream.
  InternalError: 'InternalError',
} as const;

export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * The reasons where the proxy failed to do what policy allowed: upstream refused or unreachable,
 * DNS failure, BIND failure, Redis or rules unavailable, a bug of its own. Only these make a
 * session span ERROR.
 * Everything else (a policy or limit refusal, a malformed or abandoned request, ident answers,
 * a drain) is the client's or the operator's intent working, like HTTP 4xx on an OpenTelemetry
 * SERVER span: status left unset, with `error.type` and the reply code saying why.
 */
const PROXY_FAILURES: ReadonlySet<Reason> = new Set<Reason>([
  Reason.DnsFailed,
  Reason.UpstreamRefused,
  Reason.UpstreamTimeout,
  Reason.UpstreamUnreachable,
  Reason.BindFailed,
  Reason.LimiterUnavailable,
  Reason.NoSnapshot,
  Reason.InternalError,
]);

export function isProxyFailure(reason: Reason): boolean {
  return PROXY_FAILURES.has(reason);
}

/** An error carrying a stable reason; library code throws it, the session maps it to a reply. */
export class SocksError extends Error {
  readonly reason: Reason;
  constructor(reason: Reason, message: string = reason, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SocksError';
    this.reason = reason;
  }
}

/** The `code` of a thrown value (Node's system and argument errors carry one), when it has a string one. */
export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

/**
 * The message of anything a `catch` caught, for the one-line errors users read. An Error (or an
 * error object from another realm, which has a string `message` but fails `instanceof`) gives its
 * message unchanged; anything else thrown (a string, null) gives `String(error)` instead of
 * "undefined" or a TypeError inside the handler.
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string')
    return error.message;
  return String(error);
}

/** The caught value as an Error, for APIs that take one (span.recordException, onError hooks). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(errorMessage(error), { cause: error });
}
