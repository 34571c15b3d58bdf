// One trace per session, built only from what the core announces on diagnostics_channel: a SERVER
// span from accept to close, a child span per handshake phase (published when the phase ends, with
// its start time, so children carry explicit times), and a "snapshot enforce" span per rules
// snapshot, linked to the publisher's trace. Nothing here is on the session's code path: a session
// that is not sampled costs one startSpan and no map entry.
import { performance } from 'node:perf_hooks';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type HrTime,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
} from '@opentelemetry/semantic-conventions';
import { isProxyFailure, Reason } from '../errors.ts';
import { channels, type PhaseEvent, type ReportRecord, type SessionInfo, type SnapshotEvent } from './events.ts';
import { parseTraceparent } from './trace-context.ts';

/** Project attributes: one prefix, names stable (dashboards and alerts query them). */
export const SocksAttr = {
  SessionId: 'socks4.session.id',
  Command: 'socks4.command',
  UserId: 'socks4.userid',
  DestinationHost: 'socks4.destination.host',
  DestinationIp: 'socks4.destination.ip',
  DestinationPort: 'socks4.destination.port',
  Policy: 'socks4.policy',
  Rule: 'socks4.rule.id',
  ReplyCode: 'socks4.reply.code',
  Reason: 'socks4.reason',
  Guard: 'socks4.guard',
  HandshakeMs: 'socks4.handshake.duration_ms',
  BytesFromClient: 'socks4.bytes.from_client',
  BytesToClient: 'socks4.bytes.to_client',
  SnapshotVersion: 'socks4.snapshot.version',
  SnapshotSource: 'socks4.snapshot.source',
  SnapshotRules: 'socks4.snapshot.rule_count',
  SnapshotPolicies: 'socks4.snapshot.policy_count',
  BindExpectedPeer: 'socks4.bind.expected_address',
  CutShort: 'socks4.phase.cut_short',
  // What a Report policy would have decided (spec.enforcement: Report); the session ignored it.
  ReportRule: 'socks4.report.rule.id',
  ReportPolicy: 'socks4.report.policy',
  ReportAction: 'socks4.report.action',
  ReportReason: 'socks4.report.reason',
  ReportReplyCode: 'socks4.report.reply.code',
  /** The SOCKS client's namespace (a pod of the cluster); not k8s.namespace.name, the proxy's own. */
  ClientNamespace: 'socks4.client.namespace',
  /** Cluster, Namespace, Baseline or Default: which policy tier decided. */
  Tier: 'socks4.tier',
} as const;

/** Experimental semantic convention, copied rather than imported from the unstable entry point. */
const ATTR_DNS_QUESTION_NAME = 'dns.question.name';

export const SpanName = {
  Session: 'socks4',
  Connect: 'socks4 CONNECT',
  Bind: 'socks4 BIND',
  SnapshotEnforce: 'socks4 snapshot enforce',
} as const;

export const SpanEventName = {
  Reply: 'socks4.reply',
  Established: 'socks4.established',
  TracingStopped: 'socks4.tracing_stopped',
} as const;

const phaseSpans: Record<PhaseEvent['phase'], { name: string; kind: SpanKind }> = {
  dns: { name: 'socks4 dns lookup', kind: SpanKind.INTERNAL },
  ident: { name: 'socks4 ident', kind: SpanKind.CLIENT },
  limits: { name: 'socks4 limits', kind: SpanKind.INTERNAL },
  connect: { name: 'socks4 upstream connect', kind: SpanKind.CLIENT },
  'bind-accept': { name: 'socks4 bind accept', kind: SpanKind.INTERNAL },
};

export interface SessionSpanOptions {
  /** Leave USERIDs out of spans (they may be personal data). */
  redactUserIds?: boolean;
}

interface Traced {
  readonly span: Span;
  /** Wall clock minus performance clock, taken once so parent and children nest exactly. */
  readonly offset: number;
  replied: boolean;
  established: boolean;
  endedAt: number | null; // performance.now() at close
  /** The context holding the session span, the parent of every phase span: built once, not per phase. */
  parent: Context | null;
}

/** Subscribes span recording to the core's channels; returns the unsubscribe function. */
export function subscribeSessionSpans(tracer: Tracer, options: SessionSpanOptions = {}): () => void {
  const redact = options.redactUserIds === true;
  const open = new Map<SessionInfo, Traced>();
  // Ended sessions stay reachable only while the session object is: a phase still in flight at
  // close (a connect the close aborted) is attached to its parent, cut short at the close.
  const ended = new WeakMap<SessionInfo, Traced>();
  const at = (traced: Traced, t: number): HrTime => millisToHrTime(t + traced.offset);

  const noteReply = (traced: Traced, s: SessionInfo): void => {
    if (traced.replied || s.handshakeMs === null) return;
    traced.replied = true;
    const attributes = s.replyCode === null ? {} : { [SocksAttr.ReplyCode]: s.replyCode };
    traced.span.addEvent(SpanEventName.Reply, attributes, at(traced, s.startedAt + s.handshakeMs));
  };

  const finish = (s: SessionInfo, traced: Traced, now: number): void => {
    traced.endedAt = now;
    open.delete(s);
    // Every phase precedes the relay: only a session closed before it can have one in flight.
    if (!traced.established) ended.set(s, traced);
    const span = traced.span;
    noteReply(traced, s);
    span.updateName(
      s.command === 'connect' ? SpanName.Connect : s.command === 'bind' ? SpanName.Bind : SpanName.Session,
    );
    span.setAttributes(sessionAttributes(s, redact));
    if (s.report != null) span.setAttributes(reportAttributes(s.report));
    if (s.reason !== null) {
      span.setAttribute(ATTR_ERROR_TYPE, s.reason);
      // OpenTelemetry SERVER spans: ERROR only where the proxy failed (see isProxyFailure).
      if (isProxyFailure(s.reason)) span.setStatus({ code: SpanStatusCode.ERROR, message: s.reason });
    }
    span.end(at(traced, now));
  };

  const onStart = (s: SessionInfo): void => {
    const offset = Date.now() - performance.now();
    // ROOT_CONTEXT: a session never inherits whatever span happens to be active at accept.
    const span = tracer.startSpan(
      SpanName.Session,
      { kind: SpanKind.SERVER, startTime: millisToHrTime(s.startedAt + offset) },
      ROOT_CONTEXT,
    );
    if (!span.isRecording()) return;
    // Asked now, while the client's socket is open (the session reads it on first use).
    span.setAttributes({ [ATTR_SERVER_ADDRESS]: s.localAddress, [ATTR_SERVER_PORT]: s.localPort });
    open.set(s, { span, offset, replied: false, established: false, endedAt: null, parent: null });
  };

  const onPhase = (e: PhaseEvent): void => {
    const traced = open.get(e.session) ?? ended.get(e.session);
    if (traced === undefined) return;
    if (traced.endedAt === null) noteReply(traced, e.session);
    const { name, kind } = phaseSpans[e.phase];
    const parent = (traced.parent ??= trace.setSpan(ROOT_CONTEXT, traced.span));
    const child = tracer.startSpan(
      name,
      { kind, startTime: at(traced, e.startedAt), attributes: phaseAttributes(e) },
      parent,
    );
    let endedAt = e.endedAt;
    let error = e.error;
    if (traced.endedAt !== null) {
      // The session closed while this phase ran: the phase ended then, for the session's reason.
      endedAt = Math.max(e.startedAt, traced.endedAt);
      error = e.session.reason ?? e.error ?? Reason.ClientAborted;
      child.setAttribute(SocksAttr.CutShort, true);
    }
    if (error !== null) {
      child.setAttribute(ATTR_ERROR_TYPE, error);
      // A phase that failed is ERROR; one abandoned because the session ended, or a limits
      // check that decided "over the limit", did its job.
      const abandoned = traced.endedAt !== null && e.error === null;
      const decided = e.phase === 'limits' && !isProxyFailure(error);
      if (!abandoned && !decided) child.setStatus({ code: SpanStatusCode.ERROR, message: error });
    }
    child.end(at(traced, endedAt));
  };

  const onEstablished = (s: SessionInfo): void => {
    const traced = open.get(s);
    if (traced === undefined) return;
    noteReply(traced, s);
    traced.established = true;
    traced.span.addEvent(SpanEventName.Established, at(traced, performance.now()));
  };

  const onEnd = (s: SessionInfo): void => {
    const traced = open.get(s);
    if (traced !== undefined) finish(s, traced, performance.now());
  };

  const onSnapshot = (e: SnapshotEvent): void => recordSnapshotSpan(tracer, e);

  channels.sessionStart.subscribe(onStart);
  channels.sessionPhase.subscribe(onPhase);
  channels.sessionEstablished.subscribe(onEstablished);
  channels.sessionEnd.subscribe(onEnd);
  channels.snapshotLoaded.subscribe(onSnapshot);
  return () => {
    channels.sessionStart.unsubscribe(onStart);
    channels.sessionPhase.unsubscribe(onPhase);
    channels.sessionEstablished.unsubscribe(onEstablished);
    channels.sessionEnd.unsubscribe(onEnd);
    channels.snapshotLoaded.unsubscribe(onSnapshot);
    // Sessions still open (shutdown without a drain) are exported as they are now, never dropped.
    const now = performance.now();
    for (const [s, traced] of [...open]) {
      traced.span.addEvent(SpanEventName.TracingStopped, at(traced, now));
      finish(s, traced, now);
    }
  };
}

function sessionAttributes(s: SessionInfo, redactUserIds: boolean): Attributes {
  const attributes: Attributes = {
    [ATTR_CLIENT_ADDRESS]: s.clientAddress,
    [ATTR_CLIENT_PORT]: s.clientPort,
    [ATTR_NETWORK_TRANSPORT]: 'tcp',
    [SocksAttr.SessionId]: s.id,
    [SocksAttr.BytesFromClient]: s.bytesFromClient,
    [SocksAttr.BytesToClient]: s.bytesToClient,
  };
  if (s.command !== null) attributes[SocksAttr.Command] = s.command;
  if (s.userId !== null && !redactUserIds) attributes[SocksAttr.UserId] = s.userId;
  if (s.host !== null) attributes[SocksAttr.DestinationHost] = s.host;
  if (s.destIp !== null) attributes[SocksAttr.DestinationIp] = s.destIp;
  if (s.destPort !== 0) attributes[SocksAttr.DestinationPort] = s.destPort;
  if (s.ruleId !== null) {
    attributes[SocksAttr.Rule] = s.ruleId;
    // Rule ids are `namespace/policy/rule`: the policy is everything before the rule's name.
    const cut = s.ruleId.lastIndexOf('/');
    if (cut > 0) attributes[SocksAttr.Policy] = s.ruleId.slice(0, cut);
  }
  if (s.namespace !== null) attributes[SocksAttr.ClientNamespace] = s.namespace;
  if (s.tier !== null) attributes[SocksAttr.Tier] = s.tier;
  if (s.snapshotVersion !== null) attributes[SocksAttr.SnapshotVersion] = s.snapshotVersion;
  if (s.replyCode !== null) attributes[SocksAttr.ReplyCode] = s.replyCode;
  if (s.reason !== null) attributes[SocksAttr.Reason] = s.reason;
  if (s.guard != null) attributes[SocksAttr.Guard] = s.guard;
  if (s.handshakeMs !== null) attributes[SocksAttr.HandshakeMs] = Math.round(s.handshakeMs * 1000) / 1000;
  return attributes;
}

function reportAttributes(r: ReportRecord): Attributes {
  return {
    [SocksAttr.ReportRule]: r.ruleId,
    [SocksAttr.ReportPolicy]: r.policy,
    [SocksAttr.ReportAction]: r.action,
    [SocksAttr.ReportReason]: r.reason,
    [SocksAttr.ReportReplyCode]: r.reply,
  };
}

function phaseAttributes(e: PhaseEvent): Attributes {
  const s = e.session;
  switch (e.phase) {
    case 'dns':
      return s.host === null ? {} : { [ATTR_DNS_QUESTION_NAME]: s.host };
    case 'ident':
      // RFC 1413: the query goes back to the client's own host.
      return { [ATTR_SERVER_ADDRESS]: s.clientAddress, [ATTR_NETWORK_TRANSPORT]: 'tcp' };
    case 'limits':
      return s.ruleId === null ? {} : { [SocksAttr.Rule]: s.ruleId };
    case 'connect': {
      const attributes: Attributes = {
        [ATTR_SERVER_ADDRESS]: s.host ?? s.destIp ?? '',
        [ATTR_SERVER_PORT]: s.destPort,
        [ATTR_NETWORK_PEER_PORT]: s.destPort,
        [ATTR_NETWORK_TRANSPORT]: 'tcp',
      };
      if (s.destIp !== null) attributes[ATTR_NETWORK_PEER_ADDRESS] = s.destIp;
      return attributes;
    }
    case 'bind-accept':
      return s.destIp === null ? {} : { [SocksAttr.BindExpectedPeer]: s.destIp };
  }
}

/**
 * A span per snapshot taken into force. When the publisher (the operator's reconcile, `policy
 * push`) was traced, the span links to it: one query then shows `kubectl apply` → reconcile →
 * every pod that enforced the result. A link, not a parent: each pod's load is its own trace.
 */
function recordSnapshotSpan(tracer: Tracer, e: SnapshotEvent): void {
  const remote = e.traceparent === undefined ? null : parseTraceparent(e.traceparent);
  const links: Link[] = remote === null ? [] : [{ context: remote }];
  const span = tracer.startSpan(
    SpanName.SnapshotEnforce,
    {
      kind: SpanKind.INTERNAL,
      links,
      startTime: millisToHrTime(Math.min(e.loadedAt, Date.now())),
      attributes: {
        [SocksAttr.SnapshotVersion]: e.version,
        [SocksAttr.SnapshotSource]: e.source,
        [SocksAttr.SnapshotRules]: e.ruleCount,
        [SocksAttr.SnapshotPolicies]: e.policyCount,
      },
    },
    ROOT_CONTEXT,
  );
  span.end(millisToHrTime(Date.now()));
}
