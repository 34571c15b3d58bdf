// What each reason code means and what to do about it: read by docs/reference.md (generated) and
// the troubleshooting page. A Record over the registry, so a new reason without help fails typecheck.
import { Reason } from './errors.ts';

export const REASON_HELP: Record<Reason, string> = {
  [Reason.BadVersion]: 'The first byte was not 4: not a SOCKS4 client (SOCKS5, TLS, HTTP). Closed without a reply.',
  [Reason.BadCommand]: 'CD was neither 1 (CONNECT) nor 2 (BIND).',
  [Reason.ZeroPort]: 'DSTPORT 0 is never a destination.',
  [Reason.UserIdTooLong]: 'The USERID ran past 255 bytes without its NUL.',
  [Reason.HostnameTooLong]: 'The SOCKS4a host name ran past 255 bytes without its NUL.',
  [Reason.EmptyHostname]: 'A SOCKS4a request (DSTIP 0.0.0.x) with an empty host name.',
  [Reason.InvalidHostname]:
    'The SOCKS4a name is not a valid host name once converted to canonical ASCII (IDNA/UTS-46): controls, spaces, empty labels, over 253 bytes.',
  [Reason.ProxyHeaderInvalid]:
    'With --proxy-protocol: the PROXY header was missing or malformed. Closed without a reply.',
  [Reason.HandshakeTimeout]: 'The request was not complete within --handshake-timeout.',
  [Reason.NoRuleMatched]: 'No rule matched: default deny. `policy explain` shows why each rule was skipped.',
  [Reason.RuleDenied]: 'A Deny rule matched; the log line and span name it (rule).',
  [Reason.GuardedDestination]:
    'The destination is loopback, link-local, private or the fleet itself, and the allowing rule does not name that range in to.cidrs.',
  [Reason.NoSnapshot]:
    'The proxy holds no rules (fleet mode: nothing published under its --redis-prefix yet). Its log warns with the prefix.',
  [Reason.RateLimited]: "The rule's connectionRate limit for this key was exceeded.",
  [Reason.ConcurrencyLimited]: "The rule's concurrentSessions limit for this key was reached.",
  [Reason.LimiterUnavailable]: 'Redis could not decide the limits and --limits-fail-mode is closed.',
  [Reason.IdentUnreachable]: "ident: Required, and the client's identd did not answer (reply 92).",
  [Reason.IdentMismatch]: "The client's identd named a different user than the USERID (reply 93).",
  [Reason.DnsFailed]: 'The SOCKS4a name did not resolve to an IPv4 address.',
  [Reason.DnsOverloaded]:
    'Too many DNS queries in flight (--dns-max-in-flight), overall or from this client address (its --source-share).',
  [Reason.UpstreamRefused]: 'The destination refused the connection (nothing listens there).',
  [Reason.UpstreamTimeout]: 'The destination did not answer within --connect-timeout.',
  [Reason.UpstreamUnreachable]: 'No route to the destination, or another connect error.',
  [Reason.BindFailed]: 'BIND: the proxy could not open its listening socket.',
  [Reason.BindTimeout]: 'BIND: no inbound connection within --bind-timeout.',
  [Reason.BindPeerMismatch]: 'BIND: the inbound connection came from an address other than DSTIP.',
  [Reason.Draining]: 'The proxy is shutting down (SIGTERM): refused at accept, or cut when the drain grace ended.',
  [Reason.TooManySessions]:
    'Over --max-sessions: refused at accept (logged as "connections refused at accept", with counts).',
  [Reason.TooManyHandshakes]:
    'Over --max-handshakes: refused at accept, or the oldest slow handshake yielded its slot.',
  [Reason.TooManyPending]:
    'The pending pool (--max-pending: sessions awaiting DNS, limits, ident, an upstream connect or a BIND peer) was full and this session was the oldest: it yielded its slot to a newcomer.',
  [Reason.SourceShareExceeded]:
    'This client address already held its --source-share of a slot pool; its own oldest session yielded.',
  [Reason.InternalError]:
    'An exception the proxy did not expect (a bug): the session was refused rather than left hanging. The log line carries the error; please report it.',
  [Reason.ClientAborted]: 'The client went away before its request was decided (a TCP health check does this).',
};
