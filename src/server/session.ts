// One client connection from accept to close. The session owns its sockets, walks named states,
// keeps the client paused while it awaits decisions, and fails at most once: the only place
// where a reason becomes a reply byte.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Reason, SocksError } from '../errors.ts';
import { encodeReply } from '../protocol/encode.ts';
import { ReplyCode } from '../protocol/constants.ts';
import { parseRequest, type Socks4Request } from '../protocol/parse-request.ts';
import { parseProxyHeader } from '../protocol/proxy-protocol.ts';
import { decideBeforeResolve, evaluate } from '../policy/evaluate.ts';
import type { Decision } from '../policy/evaluate.ts';
import { evaluateReport, evaluateReportBeforeResolve } from '../policy/report.ts';
import type { GuardedRange } from '../policy/guard.ts';
import { canonicalizeHost } from '../policy/hostname.ts';
import type { Admission, Lease, RuleLimits } from '../limits/types.ts';
import {
  channels,
  type PhaseEvent,
  type ReportRecord,
  type SessionInfo,
  type SessionState,
} from '../telemetry/events.ts';
import { reportLimits, reportRecordFor, reportRefusedByLimit, UNAVAILABLE } from './report.ts';
import { openBindListener } from './bind.ts';
import { identOutcome, queryIdent } from './ident.ts';
import { unmapIpv4 } from '../policy/ip.ts';
import { relay, type RelayCloseCause, type RelaySockets } from './relay.ts';
import { connectUpstream } from './upstream.ts';
import type { DeadlineSweep } from './deadline-sweep.ts';
import type { SessionEnv } from './session-env.ts';

/** Reply byte for a refusal: 92 and 93 belong to ident alone (README: never used otherwise). */
export function replyCodeFor(reason: Reason): ReplyCode {
  if (reason === Reason.IdentUnreachable) return ReplyCode.IdentUnreachable;
  if (reason === Reason.IdentMismatch) return ReplyCode.IdentMismatch;
  return ReplyCode.Rejected;
}

/** The 8-byte refusal for `reason`; the listener sends it too when it refuses at accept. */
export function encodeRefusal(reason: Reason): Buffer {
  return encodeReply(replyCodeFor(reason), 0, '0.0.0.0');
}

function toReason(error: unknown, fallback: Reason): Reason {
  return error instanceof SocksError ? error.reason : fallback;
}

const LINGER_MS = 2000;
/** Limiters decide their own fail mode; one that throws anyway has not admitted anyone. */
const LIMITER_FAILED: Admission = Object.freeze({ ok: false, reason: Reason.LimiterUnavailable, retryAfterMs: 0 });
const discard = (): void => {};

export interface SessionHooks {
  onRequest(session: Session): void; // once: the request is parsed (leaves the reading pool)
  onSettled(session: Session): void; // once: relaying (leaves the pending pool)
  onEnd(session: Session): void;
  /** The server's handshake and connect deadlines (one timer for all sessions). */
  readonly deadlines: DeadlineSweep<Session>;
  /**
   * The listener's address when it is one address, not a wildcard: every client reached that
   * address and port, so sessions need not ask their socket (null: they ask). Set by listen().
   */
  listening: { readonly address: string; readonly port: number } | null;
}

/** Settles with `promise`, or rejects with `reason` after `ms` (0 = no deadline). */
function within<T>(promise: Promise<T> | T, ms: number, reason: Reason, onLate?: (value: T) => void): Promise<T> {
  if (ms === 0) return Promise.resolve(promise);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // The answer may still come: whoever asked must be able to undo it (a lease to release).
      if (onLate !== undefined) void Promise.resolve(promise).then(onLate, discard);
      reject(new SocksError(reason, `no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

let sequence = 0;
const idPrefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

export class Session implements SessionInfo {
  readonly id = idPrefix + (++sequence).toString(36);
  readonly startedAt = performance.now();
  clientAddress: string;
  clientPort: number;
  state: SessionState = 'handshake';
  command: 'connect' | 'bind' | null = null;
  userId: string | null = null;
  host: string | null = null;
  destIp: string | null = null;
  destPort = 0;
  ruleId: string | null = null;
  namespace: string | null = null;
  tier: string | null = null;
  snapshotVersion: string | null = null;
  replyCode: ReplyCode | null = null;
  reason: Reason | null = null;
  error: Error | null = null;
  guard: GuardedRange | null = null;
  closeCause: Reason | RelayCloseCause | null = null;
  handshakeMs: number | null = null;
  bytesFromClient = 0;
  bytesToClient = 0;
  report: ReportRecord | null = null;

  readonly #client: Socket;
  readonly #env: SessionEnv;
  #upstream: Socket | null = null;
  /** Once relaying: the sockets in use (a side may move to a new Socket object, see relay.ts). */
  #relay: RelaySockets | null = null;
  #lease: Lease | null = null;
  /** A Report rule's limits: counted for the session's life, never obeyed. */
  #reportLease: Lease | null = null;
  #reportAdmission: Promise<void> | null = null;
  #cancel: (() => void) | null = null;
  /** While the upstream connect runs under its deadline: when it started (performance.now). */
  #connectStarted: number | null = null;
  #pending: Buffer | null = null;
  #headerDone: boolean;
  readonly #hooks: SessionHooks;
  #lingering = false;
  /** The client sent payload with its request: a FIN then is a half-close, not a hang-up. */
  #sentEarly = false;
  #handshakeListeners: { gone: () => void; ended: () => void } | null = null;
  #localEnd: { readonly address: string; readonly port: number } | null = null;

  constructor(client: Socket, env: SessionEnv, hooks: SessionHooks) {
    this.#client = client;
    this.#env = env;
    this.#hooks = hooks;
    this.clientAddress = unmapIpv4(client.remoteAddress ?? '');
    this.clientPort = client.remotePort ?? 0;
    this.#headerDone = !env.config.proxyProtocol;
  }

  /**
   * The address and port that accepted the client. Asking costs a getsockname(2) (profiled: 2% of
   * handshake CPU, 9% of tracing's), and only ident, BIND and tracing need it, so it is the
   * listener's own when that is one address, else read on first use: those all ask while the
   * session's socket is open (tracing when its span starts).
   */
  get localAddress(): string {
    return this.#local().address;
  }

  get localPort(): number {
    return this.#local().port;
  }

  #local(): { readonly address: string; readonly port: number } {
    return (this.#localEnd ??= this.#hooks.listening ?? {
      address: unmapIpv4(this.#client.localAddress ?? ''),
      port: this.#client.localPort ?? 0,
    });
  }

  /** A getter, not a field read: TypeScript would otherwise keep its narrowing across awaits. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  get inHandshake(): boolean {
    return this.state !== 'relaying' && this.state !== 'closed';
  }

  start(): void {
    if (channels.sessionStart.hasSubscribers) channels.sessionStart.publish(this);
    const client = this.#client;
    client.setNoDelay(true);
    const gone = (): void => this.#close(Reason.ClientAborted);
    // A client that half-closes before its request is complete will never complete it; one that
    // half-closes before its reply without having sent anything has hung up: it ends at once, and
    // so does its upstream connect (a client gone must not hold a pending slot for two minutes).
    // One that sent payload first is half-closing a stream it uses: that FIN is relayed.
    const ended = (): void => {
      if (this.state === 'handshake' || !this.#sentEarly) gone();
    };
    // `on`, not `once`: these fire at most once anyway, and each `once` would keep a wrapper and
    // its state alive for the whole session (thousands of idle sessions; heap-profiled).
    client.on('error', gone);
    client.on('close', gone);
    client.on('end', ended);
    this.#handshakeListeners = { gone, ended };
    this.#hooks.deadlines.add(this, this.#env.config.handshakeTimeoutMs);
    client.on('data', this.#onHandshakeData);
  }

  /** The deadline of what it awaits passed (the server's DeadlineSweep): reading it, or the connect. */
  expire(): void {
    if (this.state === 'handshake') return this.fail(Reason.HandshakeTimeout);
    const started = this.#connectStarted;
    if (this.state !== 'connecting' || started === null) return;
    this.#connectStarted = null; // the dial's own settling (closed below) is no second phase
    this.#phase('connect', started, Reason.UpstreamTimeout);
    this.fail(Reason.UpstreamTimeout);
  }

  /** Refuse with the reply the reason maps to (none for a foreign protocol), then close at once. */
  fail(reason: Reason): void {
    if (this.closed) return;
    if (this.replyCode !== null) return this.#close(reason); // already granted: nothing to refuse
    this.reason = reason;
    if (reason !== Reason.BadVersion && reason !== Reason.ProxyHeaderInvalid) {
      this.#reply(replyCodeFor(reason), 0, '0.0.0.0');
      this.#linger();
    }
    this.#close(reason);
  }

  /**
   * SOCKS4: "The SOCKS server closes its connection immediately after notifying the client of a
   * failed or rejected request." We send FIN at once but keep reading (and discarding) briefly:
   * closing with unread client bytes would send RST, and an RST can destroy the reply in flight.
   */
  #linger(): void {
    const client = this.#client;
    this.#lingering = true;
    client.removeListener('data', this.#onHandshakeData);
    client.on('data', discard);
    client.resume();
    client.end();
    setTimeout(() => client.destroy(), LINGER_MS).unref();
  }

  /** Ends the session now, whatever its state (drain deadline, idle timeout). */
  destroy(reason: Reason): void {
    if (this.inHandshake) this.fail(reason);
    else this.#close(reason);
  }

  #reply(code: ReplyCode, port: number, ip: string): void {
    if (this.replyCode === null) this.handshakeMs = performance.now() - this.startedAt;
    this.replyCode = code;
    this.#client.write(encodeReply(code, port, ip));
  }

  #onHandshakeData = (chunk: Buffer): void => {
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    let offset = 0;
    if (!this.#headerDone) {
      const header = parseProxyHeader(buf);
      if (header.kind === 'incomplete') return void (this.#pending = buf);
      if (header.kind === 'invalid') return this.fail(Reason.ProxyHeaderInvalid);
      this.#headerDone = true;
      if (!header.header.local) {
        // A dual-stack balancer sends an IPv4 client as TCP6 ::ffff:a.b.c.d: one client, one form,
        // so per-source limit keys, logs and the pod map see a.b.c.d as for a direct connection.
        this.clientAddress = unmapIpv4(header.header.sourceAddress);
        this.clientPort = header.header.sourcePort;
      }
      offset = header.bytesRead;
    }
    const rest = offset === 0 ? buf : buf.subarray(offset);
    const parsed = parseRequest(rest);
    if (parsed.kind === 'incomplete') return void (this.#pending = rest);
    this.#pending = null;
    if (parsed.kind === 'invalid') return this.fail(parsed.reason);
    // Bytes after the request are the client's first payload: kept and relayed, never dropped.
    const early = parsed.bytesRead < rest.length ? rest.subarray(parsed.bytesRead) : null;
    this.#sentEarly = early !== null;
    this.#client.removeListener('data', this.#onHandshakeData);
    this.#client.pause();
    // The request is read: the handshake deadline is met. DNS, limits and ident each have their
    // own deadline from here, then the connect (or BIND accept) deadline.
    this.#hooks.deadlines.delete(this);
    this.#hooks.onRequest(this);
    // Each step classifies its own failures; what still escapes is a bug here, not the upstream's.
    this.#decide(parsed.request, early).catch((error: unknown) => this.#failUnexpected(error));
  };

  /** A known failure keeps its reason; anything else is ours (InternalError), kept for the log. */
  #failUnexpected(error: unknown): void {
    const reason = toReason(error, Reason.InternalError);
    if (reason === Reason.InternalError && !this.closed)
      this.error = error instanceof Error ? error : new Error(String(error));
    this.fail(reason);
  }

  #phase(phase: PhaseEvent['phase'], startedAt: number, error: Reason | null): void {
    if (channels.sessionPhase.hasSubscribers) {
      channels.sessionPhase.publish({
        session: this,
        phase,
        startedAt,
        endedAt: performance.now(),
        error,
      } satisfies PhaseEvent);
    }
  }

  async #decide(request: Socks4Request, early: Buffer | null): Promise<void> {
    this.state = 'deciding';
    this.command = request.command;
    this.userId = request.userId;
    this.host = request.host;
    this.destPort = request.port;
    const snapshot = this.#env.rules();
    if (snapshot === null) return this.fail(Reason.NoSnapshot);
    this.snapshotVersion = snapshot.version;
    const env = this.#env;
    // A Map read: the operator's pod map is held locally, never fetched while the client waits.
    this.namespace = env.namespaceOf?.(this.clientAddress) ?? null;
    const ctx = {
      namespace: this.namespace,
      command: request.command,
      sourceIp: this.clientAddress,
      userId: request.userId,
      host: request.host,
      destIp: request.ip,
      destPort: request.port,
      selfAddresses: env.selfAddresses,
      fleet: env.fleet ?? null,
    };
    // Converted once (IDNA/UTS-46, lower case, no root dot): this form is matched, logged, traced
    // and resolved; a name spelled as an address is that address, with no DNS at all.
    const canonical = request.host === null ? null : canonicalizeHost(request.host);
    if (canonical?.kind === 'invalid') return this.fail(Reason.InvalidHostname);
    if (canonical?.kind === 'address') ctx.host = this.host = ctx.destIp = canonical.text;
    if (canonical?.kind === 'name') {
      ctx.host = this.host = canonical.name;
      // No DNS query for a name that no rule could allow: refuse with the real reason now.
      const refusal = decideBeforeResolve(snapshot.compiled, ctx);
      if (refusal !== null) {
        this.#noteReport(evaluateReportBeforeResolve(snapshot.compiled, ctx));
        this.ruleId = refusal.rule?.id ?? null;
        this.tier = refusal.tier;
        return this.fail(refusal.reason);
      }
      const started = performance.now();
      try {
        // The session's end cancels its query (and frees its place in the resolver's caps).
        const abort = new AbortController();
        this.#cancel = () => abort.abort();
        ctx.destIp = unmapIpv4(await env.resolve(canonical.name, { source: this.clientAddress, signal: abort.signal }));
        this.#cancel = null;
      } catch (error) {
        this.#cancel = null;
        const reason = toReason(error, Reason.DnsFailed);
        this.#phase('dns', started, reason);
        return this.fail(reason === Reason.DnsOverloaded ? reason : Reason.DnsFailed);
      }
      this.#phase('dns', started, null);
      if (this.closed) return;
    }
    this.destIp = ctx.destIp;
    const decision = evaluate(snapshot.compiled, ctx);
    this.#noteReport(evaluateReport(snapshot.compiled, ctx));
    this.ruleId = decision.rule?.id ?? null;
    this.guard = decision.guard ?? null;
    this.tier = decision.tier;
    if (decision.action !== 'allow') return this.fail(decision.reason);
    const admitted = this.#admit(decision);
    if (typeof admitted === 'boolean' ? !admitted : !(await admitted)) return;
    // Started before our own admission, so the two limiter calls overlap. Awaited so that every
    // granted session's record carries the limit outcome; when the deciding rule has no limits of
    // its own this is the one limiter call on the session's path.
    if (this.#reportAdmission !== null) {
      await this.#reportAdmission;
      this.#reportAdmission = null;
    }
    if (this.closed) return;
    if (decision.ident !== 'Off' && !(await this.#checkIdent(decision, request.userId))) return;
    if (request.command === 'connect') await this.#connect(ctx.destIp, request.port, early);
    else await this.#bind(ctx.destIp, early);
  }

  /**
   * Whether the limiter admitted the session; a promise only when its answer is one (Redis): the
   * in-process limiter decides at once, and then no deadline is raced and nothing awaited (a
   * timer, a race and five promises per session, profiled ~1.5% of handshake CPU).
   */
  #admit(decision: Decision): boolean | Promise<boolean> {
    if (decision.limits === null || decision.rule === null) return true;
    const started = performance.now();
    let answer: Admission | Promise<Admission>;
    try {
      answer = this.#env.limiter.admit({
        ruleId: decision.rule.id,
        limits: decision.limits,
        sourceIp: this.clientAddress,
        userId: this.userId ?? '',
        sessionId: this.id,
      });
    } catch {
      answer = LIMITER_FAILED;
    }
    if (!(answer instanceof Promise)) return this.#admitted(answer, started);
    // A limiter slower than its deadline has not admitted anyone; a lease it grants later is
    // handed straight back.
    return within(
      answer,
      this.#env.config.limitsTimeoutMs,
      Reason.LimiterUnavailable,
      (late) => void (late.ok && late.lease.release()),
    ).then(
      (admission) => this.#admitted(admission, started),
      () => this.#admitted(LIMITER_FAILED, started),
    );
  }

  #admitted(admission: Admission, started: number): boolean {
    if (!admission.ok) {
      this.#phase('limits', started, admission.reason);
      this.fail(admission.reason);
      return false;
    }
    this.#phase('limits', started, null);
    this.#lease = admission.lease;
    // The client may have gone while Redis answered: give the lease straight back.
    if (this.closed) {
      admission.lease.release();
      return false;
    }
    return true;
  }

  /** Records what a Report policy would have decided; its limits are counted, not awaited here. */
  #noteReport(would: Decision | null): void {
    if (would === null || would.rule === null) return;
    this.report = reportRecordFor({ ...would, rule: would.rule });
    const limits = would.action === 'allow' ? reportLimits(would.limits) : null;
    if (limits !== null) this.#reportAdmission = this.#admitReport(would.rule.id, limits);
  }

  async #admitReport(ruleId: string, limits: RuleLimits): Promise<void> {
    let admission: Admission;
    try {
      admission = await this.#env.limiter.admit({
        ruleId,
        limits,
        sourceIp: this.clientAddress,
        userId: this.userId ?? '',
        sessionId: this.id,
      });
    } catch {
      admission = UNAVAILABLE;
    }
    if (!admission.ok) {
      if (this.report !== null) this.report = reportRefusedByLimit(this.report, admission.reason);
      return;
    }
    if (this.closed) admission.lease.release();
    else this.#reportLease = admission.lease;
  }

  async #checkIdent(decision: Decision, userId: string): Promise<boolean> {
    if (decision.ident === 'Off') return true;
    const started = performance.now();
    // A client that goes away ends its ident query too, not the 10 s ident timeout.
    const abort = new AbortController();
    this.#cancel = () => abort.abort();
    const result = await queryIdent({
      localAddress: this.localAddress,
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      serverPort: this.localPort,
      identPort: this.#env.config.identPort,
      timeoutMs: this.#env.config.identTimeoutMs,
      signal: abort.signal,
    });
    this.#cancel = null;
    const outcome = identOutcome(result, userId, decision.ident);
    this.#phase('ident', started, outcome === 'ok' ? null : outcome);
    if (outcome === 'ok') return !this.closed;
    this.fail(outcome);
    return false;
  }

  async #connect(ip: string, port: number, early: Buffer | null): Promise<void> {
    this.state = 'connecting';
    const started = performance.now();
    // 0: the dial keeps no timer of its own; the deadline is the sweep's (expire above).
    const { socket, connected } = (this.#env.dial ?? connectUpstream)(ip, port, 0);
    this.#upstream = socket;
    this.#cancel = () => socket.destroy();
    this.#connectStarted = started;
    this.#hooks.deadlines.add(this, this.#env.config.connectTimeoutMs);
    try {
      await connected;
    } catch (error) {
      if (this.#connectStarted === null) return; // expired: already reported and refused
      this.#connectStarted = null;
      this.#hooks.deadlines.delete(this);
      const reason = toReason(error, Reason.UpstreamUnreachable);
      this.#phase('connect', started, reason);
      return this.fail(reason);
    }
    if (this.#connectStarted === null) return; // expired: already reported and refused
    this.#connectStarted = null;
    this.#hooks.deadlines.delete(this);
    this.#phase('connect', started, null);
    if (this.closed) return;
    // The address we dialed is the one connected to; asking the socket costs a getpeername(2).
    this.#reply(ReplyCode.Granted, port, ip);
    this.#startRelay(socket, early);
  }

  async #bind(expectedIp: string, early: Buffer | null): Promise<void> {
    this.state = 'binding';
    const config = this.#env.config;
    const listener = await openBindListener(config.bindAddress ?? this.localAddress, config.bindAcceptTimeoutMs);
    this.#cancel = () => listener.close();
    if (this.closed) return listener.close();
    // First reply: where the application server must connect. Our listener is bound to a concrete
    // address, so the client never has to substitute 0.0.0.0 unless bindAddress says so.
    this.#reply(ReplyCode.Granted, listener.port, listener.address);
    const started = performance.now();
    let peer: Socket;
    try {
      peer = await listener.accepted;
    } catch (error) {
      const reason = toReason(error, Reason.BindFailed);
      this.#phase('bind-accept', started, reason);
      return this.#failAfterGrant(reason);
    }
    this.#upstream = peer;
    if (this.closed) return void peer.destroy();
    const peerIp = unmapIpv4(peer.remoteAddress ?? '');
    if (peerIp !== expectedIp) {
      this.#phase('bind-accept', started, Reason.BindPeerMismatch);
      peer.destroy();
      return this.#failAfterGrant(Reason.BindPeerMismatch);
    }
    this.#phase('bind-accept', started, null);
    // Second reply: the peer's address, then relay as with CONNECT.
    this.#client.write(encodeReply(ReplyCode.Granted, peer.remotePort ?? 0, peerIp));
    this.#startRelay(peer, early);
  }

  /** BIND's second reply can still refuse after the first granted: 91, then both closed. */
  #failAfterGrant(reason: Reason): void {
    if (this.closed) return;
    this.reason = reason;
    this.replyCode = replyCodeFor(reason);
    this.#client.write(encodeRefusal(reason));
    this.#linger();
    this.#close(reason);
  }

  #startRelay(upstream: Socket, early: Buffer | null): void {
    this.#cancel = null;
    this.state = 'relaying';
    this.#hooks.onSettled(this);
    if (channels.sessionEstablished.hasSubscribers) channels.sessionEstablished.publish(this);
    const client = this.#client;
    // From here the relay watches both sockets (its close ends the session): the handshake's
    // listeners would only duplicate it and hold listener arrays for the session's lifetime.
    if (this.#handshakeListeners !== null) {
      const { gone, ended } = this.#handshakeListeners;
      client.removeListener('error', gone);
      client.removeListener('close', gone);
      client.removeListener('end', ended);
      this.#handshakeListeners = null;
    }
    if (early !== null) {
      this.bytesFromClient += early.length;
      upstream.write(early);
    }
    this.#relay = relay(client, upstream, {
      idleMs: this.#env.config.idleTimeoutMs,
      gate: this.#lease?.bandwidth ?? null,
      counters: this,
      onClose: (_error, cause) => {
        this.closeCause ??= cause;
        this.#close(null);
      },
    });
  }

  #close(reason: Reason | null): void {
    if (this.closed) return;
    if (this.reason === null && reason !== null && this.replyCode !== ReplyCode.Granted) this.reason = reason;
    // A granted session keeps no refusal reason, but a drain or a timeout that cut it is its cause.
    this.closeCause ??= reason ?? this.reason ?? 'closed';
    this.state = 'closed';
    this.#hooks.deadlines.delete(this);
    this.#cancel?.();
    this.#cancel = null;
    if (this.#relay !== null) {
      this.#relay.client.destroy();
      this.#relay.upstream.destroy();
    } else {
      if (!this.#lingering) this.#client.destroy();
      this.#upstream?.destroy();
    }
    this.#lease?.release();
    this.#lease = null;
    this.#reportLease?.release();
    this.#reportLease = null;
    this.#hooks.onEnd(this);
    if (channels.sessionEnd.hasSubscribers) channels.sessionEnd.publish(this);
  }
}
