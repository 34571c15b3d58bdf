// Human explanations of a decision: which rules were skipped and why, which one decided, and what
// the SSRF guard said. Used by `socks4-fleet policy explain`; it walks the rules linearly with the
// same checks evaluate() uses, so the decision it reports is the one the proxy makes.

import type { CompiledPolicySet, CompiledRule } from './compile.ts';
import { NO_RULE_MATCHED } from './compile.ts';
import { decideWith, findMismatch, prepareContext } from './evaluate.ts';
import { NO_NAMESPACE } from './evaluate.ts';
import type { Mismatch, PreparedContext } from './evaluate.ts';
import { classifyDestination, GuardedRange, ruleOpensGuard } from './guard.ts';
import type { GuardHit } from './guard.ts';
import { formatIpv4, NOT_IPV4 } from './ip.ts';
import type { Decision, EvalContext, RuleLimits, RuleRef } from './types.ts';

export interface Explanation {
  readonly decision: Decision;
  /** One line per rule considered, in evaluation order, then guard notes. */
  readonly lines: string[];
}

export function formatRuleRef(ref: RuleRef | null): string {
  if (ref === null) return 'none';
  // Cluster policy ids carry no namespace (policyId): say which kind it is.
  return ref.policy.includes('/') ? `${ref.policy} rule ${ref.name}` : `cluster ${ref.policy} rule ${ref.name}`;
}

export function formatLimits(limits: RuleLimits | null): string {
  if (limits === null) return 'none';
  const parts: string[] = [];
  const { connectionRate: rate, concurrentSessions: conc, bandwidth: bw } = limits;
  if (rate) parts.push(`connectionRate ${rate.perSecond}/s burst ${rate.burst} per ${rate.key}`);
  if (conc) parts.push(`concurrentSessions ${conc.max} per ${conc.key}`);
  if (bw) parts.push(`bandwidth ${bw.bytesPerSecond} B/s per ${bw.key}`);
  return parts.join(', ');
}

const list = (items: readonly string[] | undefined): string => `[${(items ?? []).join(', ')}]`;

function describeAddress(ip: number, raw: string): string {
  return ip === NOT_IPV4 ? `${JSON.stringify(raw)} (not an IPv4 address)` : formatIpv4(ip);
}

export function describeMismatch(field: Mismatch, rule: CompiledRule, p: PreparedContext, ctx: EvalContext): string {
  const { source } = rule;
  switch (field) {
    case 'namespace':
      return p.namespaceId === NO_NAMESPACE && (ctx.namespace === null || ctx.namespace === undefined)
        ? `the policy governs pods of its own namespace, and the client is no pod`
        : `the policy governs pods of its own namespace, and the client is in namespace ${JSON.stringify(ctx.namespace)}`;
    case 'commands':
      return `command ${ctx.command} is not in ${list(source.commands)}`;
    case 'to.ports':
      return `port ${ctx.destPort} is not in ${list(source.to?.ports)}`;
    case 'from.cidrs':
      return `source ${describeAddress(p.src, ctx.sourceIp)} is not in ${list(source.from?.cidrs)}`;
    case 'to.cidrs':
      return `destination ${describeAddress(p.dst, ctx.destIp)} is not in ${list(source.to?.cidrs)}`;
    case 'to.hosts':
      return p.host === null
        ? `the request carries no host name (plain SOCKS4), and the rule matches only ${list(source.to?.hosts)}`
        : `host ${JSON.stringify(p.host)} matches none of ${list(source.to?.hosts)}`;
    case 'from.userids':
      return `USERID ${JSON.stringify(ctx.userId)} matches none of ${list(source.from?.userids)}`;
  }
}

const ENDPOINT_NAMES: Partial<Record<GuardedRange, string>> = {
  [GuardedRange.Redis]: "the fleet's Redis",
  [GuardedRange.KubernetesApi]: 'the Kubernetes API',
  [GuardedRange.GuardEndpoint]: 'a --guard-endpoint',
};

/** "10.0.0.9 is private (10.0.0.0/8)": the guard's name is the word after "is". */
function describeHit(hit: GuardHit, ip: string): string {
  if (hit.range === GuardedRange.Self) return `${ip} is one of the proxy's own addresses`;
  const e = hit.endpoint;
  if (e !== undefined) {
    const ports = e.port === null ? 'every port' : `port ${e.port}`;
    return `${ip} is ${hit.range}: ${ENDPOINT_NAMES[hit.range] ?? 'a fleet endpoint'} (${ports}, from ${e.source})`;
  }
  return `${ip} is ${hit.range} (${hit.cidr?.text})`;
}

export function describeGuard(rule: CompiledRule, p: PreparedContext, ctx: EvalContext): string | null {
  if (p.dst < 0) return `guard: destination ${describeAddress(p.dst, ctx.destIp)} cannot be checked, refused`;
  const hit = classifyDestination(p.dst, p.selfAddresses, p.fleet, p.port);
  if (hit === null) return null;
  const ip = formatIpv4(p.dst);
  if (ruleOpensGuard(hit, p.dst, rule.destCidrs))
    return `guard: ${describeHit(hit, ip)}; opened because the rule names it in to.cidrs`;
  const how = hit.cidr?.prefix === 32 ? `${ip}/32` : `a block inside ${hit.cidr?.text}`;
  return `guard: ${describeHit(hit, ip)}; refused because the rule's to.cidrs ${list(rule.source.to?.cidrs)} do not name it (add ${how})`;
}

/** Evaluates `ctx` like evaluate() and says why, rule by rule. */
export function explainDecision(set: CompiledPolicySet, ctx: EvalContext): Explanation {
  const p = prepareContext(set, ctx, ctx.destIp);
  const lines: string[] = [];
  const { rules } = set;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as CompiledRule;
    const label = `${formatRuleRef(rule.ref)} (${rule.source.action})`;
    const field = findMismatch(rule, p);
    if (field !== null) {
      lines.push(`skip  ${label}: ${describeMismatch(field, rule, p, ctx)}`);
      continue;
    }
    if (rule.pass) {
      lines.push(`pass  ${label}: the rest of the cluster tier is skipped; the client's namespace decides`);
      i = set.namespaceStart - 1;
      continue;
    }
    lines.push(`match ${label}`);
    if (rule.allow) {
      const guard = describeGuard(rule, p, ctx);
      if (guard !== null) lines.push(`      ${guard}`);
    }
    return { decision: decideWith(rule, p), lines };
  }
  lines.push(set.rules.length === 0 ? 'no rules are loaded' : 'no rule matched');
  return { decision: NO_RULE_MATCHED, lines };
}
