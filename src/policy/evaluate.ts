// First-match evaluation over a compiled rule set. Addresses are parsed once per call; each rule
// check is integer compares, Set lookups or string scans, and the returned Decision objects are
// precompiled, so a decision allocates nothing per rule.

import { CommandBit, NO_RULE_MATCHED } from './compile.ts';
import type { CompiledPolicySet, CompiledRule } from './compile.ts';
import { matchGlobs } from './glob.ts';
import type { FleetEndpoints } from './fleet-endpoints.ts';
import { checkGuard } from './guard.ts';
import type { GuardedRange } from './guard.ts';
import { NOT_IPV4, parseIpv4 } from './ip.ts';
import { rangeSetHas } from './ranges.ts';
import { bucketForName, bucketForNumber, IndexDimension, NO_BUCKET } from './rule-index.ts';
import type { Decision, DenyDecision, EvalContext, UnresolvedContext } from './types.ts';

export type { Decision, EvalContext, RuleRef, UnresolvedContext } from './types.ts';

/** Set as `dst` while the destination is not resolved yet: `to.cidrs` is then not checked. */
export const UNRESOLVED = -2;

/** The request with addresses as integers and the host lower-cased. */
export interface PreparedContext {
  /** The client's namespace number, ANY_NAMESPACE (Shared set) or NO_NAMESPACE. */
  readonly namespaceId: number;
  readonly commandBit: number;
  readonly src: number;
  readonly user: string;
  readonly host: string | null;
  readonly dst: number;
  readonly port: number;
  /** What the SSRF guard protects besides the address classes; carried here so every caller of decideWith guards alike. */
  readonly selfAddresses: ReadonlySet<string>;
  readonly fleet: FleetEndpoints | null;
}

/** The field that made a rule miss (or `namespace`: the policy governs other pods); null when it matches. */
export type Mismatch = 'namespace' | 'commands' | 'to.ports' | 'from.cidrs' | 'to.cidrs' | 'to.hosts' | 'from.userids';

/** Every namespaced rule applies (a Shared set: no pods to attribute). */
export const ANY_NAMESPACE = -2;
/** No namespaced rule applies: the client is no pod, or its namespace has no Socks4Policy. */
export const NO_NAMESPACE = -3;

function namespaceIdOf(set: CompiledPolicySet, namespace: string | null | undefined): number {
  if (set.tenancy === 'Shared') return ANY_NAMESPACE;
  if (namespace === null || namespace === undefined) return NO_NAMESPACE;
  return set.namespaceIds.get(namespace) ?? NO_NAMESPACE;
}

export function prepareContext(set: CompiledPolicySet, ctx: UnresolvedContext, destIp: string | null): PreparedContext {
  return {
    namespaceId: namespaceIdOf(set, ctx.namespace),
    commandBit: ctx.command === 'bind' ? CommandBit.bind : CommandBit.connect,
    src: parseIpv4(ctx.sourceIp),
    user: ctx.userId,
    host: ctx.host === null ? null : normaliseHost(ctx.host),
    dst: destIp === null ? UNRESOLVED : parseIpv4(destIp),
    port: ctx.destPort,
    selfAddresses: ctx.selfAddresses,
    fleet: ctx.fleet ?? null,
  };
}

/** DNS names compare case-insensitively and `example.com.` is `example.com`. */
function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Cheapest checks first; the order is also the order explanations report. `known` names a
 * dimension already known to match: a rule found in the index's bucket for the request's key
 * matches on the indexed dimension by construction (buckets are elementary intervals, or exact
 * names), so the first-match scan skips that check and the cold per-rule data behind it.
 */
export function findMismatch(
  rule: CompiledRule,
  p: PreparedContext,
  known: IndexDimension = IndexDimension.None,
): Mismatch | null {
  // A Socks4Policy governs the pods of its own namespace only (CLUSTER_WIDE rules are < 0).
  if (rule.namespaceId >= 0 && p.namespaceId !== ANY_NAMESPACE && rule.namespaceId !== p.namespaceId)
    return 'namespace';
  if ((rule.commandMask & p.commandBit) === 0) return 'commands';
  if (rule.ports !== null && known !== IndexDimension.Port && !rangeSetHas(rule.ports, p.port)) return 'to.ports';
  if (rule.sourceRanges !== null && known !== IndexDimension.Source && !rangeSetHas(rule.sourceRanges, p.src))
    return 'from.cidrs';
  if (
    rule.destRanges !== null &&
    p.dst !== UNRESOLVED &&
    known !== IndexDimension.Destination &&
    !rangeSetHas(rule.destRanges, p.dst)
  )
    return 'to.cidrs';
  // A host rule speaks about SOCKS4a names only; a plain SOCKS4 request has none to match.
  if (rule.hosts !== null && known !== IndexDimension.Host && (p.host === null || !matchGlobs(rule.hosts, p.host)))
    return 'to.hosts';
  if (rule.userids !== null && known !== IndexDimension.UserId && !matchGlobs(rule.userids, p.user))
    return 'from.userids';
  return null;
}

/**
 * A rule's guard refusal naming the guard, made once per rule and guard: refusals stay
 * allocation-free like every other decision.
 */
const guardedDecisions = new WeakMap<CompiledRule, Map<GuardedRange, Decision>>();

function guardedDecision(rule: CompiledRule, guard: GuardedRange): Decision {
  let byGuard = guardedDecisions.get(rule);
  if (byGuard === undefined) guardedDecisions.set(rule, (byGuard = new Map()));
  let d = byGuard.get(guard);
  if (d === undefined) byGuard.set(guard, (d = Object.freeze({ ...rule.guardedDecision, guard })));
  return d;
}

/**
 * The decision for a rule that matched, after the SSRF guard for allows. `selfAddresses` is kept
 * for callers of the older signature; the guard reads `p`.
 */
export function decideWith(
  rule: CompiledRule,
  p: PreparedContext,
  selfAddresses: ReadonlySet<string> = p.selfAddresses,
): Decision {
  if (!rule.allow) return rule.decision;
  const hit = checkGuard(p.dst, p.port, selfAddresses, p.fleet, rule.destCidrs);
  return hit === null ? rule.decision : guardedDecision(rule, hit.range);
}

function bucketFor(set: CompiledPolicySet, p: PreparedContext): number {
  const { index } = set;
  switch (index.dimension) {
    case IndexDimension.Port:
      return bucketForNumber(index, p.port);
    case IndexDimension.Source:
      return bucketForNumber(index, p.src);
    case IndexDimension.Destination:
      return bucketForNumber(index, p.dst);
    case IndexDimension.UserId:
      return bucketForName(index, p.user);
    case IndexDimension.Host:
      return bucketForName(index, p.host);
    default:
      return bucketForNumber(index, NOT_IPV4);
  }
}

/** The first rule at or after position `from` that matches `p`, in evaluation order; null when none does. */
export function findFirstMatch(set: CompiledPolicySet, p: PreparedContext, from = 0): CompiledRule | null {
  const { rules, index } = set;
  const general = index.general;
  const bucketRules = index.bucketRules;
  const k = bucketFor(set, p);
  const gn = general.length;
  let b = k === NO_BUCKET ? 0 : (index.bucketStarts[k] as number);
  const bn = k === NO_BUCKET ? 0 : (index.bucketStarts[k + 1] as number);
  let g = 0;
  // After a Pass: both lists are ascending, so skipping the cluster tier is a prefix of each.
  while (g < gn && (general[g] as number) < from) g++;
  while (b < bn && (bucketRules[b] as number) < from) b++;
  // Merge two ascending position lists; each step advances one of them, so this ends.
  while (g < gn || b < bn) {
    const gp = g < gn ? (general[g] as number) : Infinity;
    const bp = b < bn ? (bucketRules[b] as number) : Infinity;
    if (gp < bp) {
      g++;
      if (findMismatch(rules[gp] as CompiledRule, p) === null) return rules[gp] as CompiledRule;
    } else {
      b++;
      if (findMismatch(rules[bp] as CompiledRule, p, index.dimension) === null) return rules[bp] as CompiledRule;
    }
  }
  return null;
}

/**
 * Decides one request: the first matching rule wins, no match denies (NoRuleMatched). A matching
 * Pass rule skips the rest of the cluster tier; the search goes on in the namespace tier.
 */
export function evaluate(set: CompiledPolicySet, ctx: EvalContext): Decision {
  const p = prepareContext(set, ctx, ctx.destIp);
  let rule = findFirstMatch(set, p);
  if (rule?.pass) rule = findFirstMatch(set, p, set.namespaceStart);
  return rule === null ? NO_RULE_MATCHED : decideWith(rule, p);
}

/**
 * Decides a SOCKS4a request before its name is resolved, when that is possible: a deny Decision
 * when no rule could allow it whatever the name resolves to, or null when resolution is needed.
 * Lets the server skip DNS lookups for names no rule could allow.
 */
export function decideBeforeResolve(set: CompiledPolicySet, ctx: UnresolvedContext): DenyDecision | null {
  const p = prepareContext(set, ctx, null);
  const { rules } = set;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as CompiledRule;
    if (findMismatch(rule, p) !== null) continue;
    if (rule.pass) {
      // With `to.cidrs` the Pass may or may not apply once resolved: both paths stay open.
      if (rule.destRanges !== null) return null;
      i = set.namespaceStart - 1;
      continue;
    }
    // `rule.allow`, asked of the decision so that its type narrows to a deny.
    const { decision } = rule;
    if (decision.action === 'allow') return null;
    // A deny rule without `to.cidrs` matches whatever the address; with them, it might not.
    if (rule.destRanges === null) return decision;
  }
  return NO_RULE_MATCHED;
}

/** True when some resolution of the name could still be allowed (so resolving is worthwhile). */
export function couldAllowBeforeResolve(set: CompiledPolicySet, ctx: UnresolvedContext): boolean {
  return decideBeforeResolve(set, ctx) === null;
}

export { NO_RULE_MATCHED };
