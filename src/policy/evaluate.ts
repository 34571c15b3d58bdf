// First-match evaluation over a compiled rule set. Addresses are parsed once per call; each rule
// check is integer compares, Set lookups or string scans, and the returned Decision objects are
// precompiled, so a decision allocates nothing per rule.

import { CommandBit, NO_RULE_MATCHED } from './compile.ts';
import type { CompiledPolicySet, CompiledRule } from './compile.ts';
import { matchGlobs } from './glob.ts';
import { checkGuard } from './guard.ts';
import { NOT_IPV4, parseIpv4 } from './ip.ts';
import { rangeSetHas } from './ranges.ts';
import { bucketForName, bucketForNumber, IndexDimension } from './rule-index.ts';
import type { Decision, EvalContext, UnresolvedContext } from './types.ts';

export type { Decision, EvalContext, RuleRef, UnresolvedContext } from './types.ts';

/** Set as `dst` while the destination is not resolved yet: `to.cidrs` is then not checked. */
export const UNRESOLVED = -2;

/** The request with addresses as integers and the host lower-cased. */
export interface PreparedContext {
  readonly commandBit: number;
  readonly src: number;
  readonly user: string;
  readonly host: string | null;
  readonly dst: number;
  readonly port: number;
}

/** The field that made a rule miss; null when the rule matches. */
export type Mismatch = 'commands' | 'to.ports' | 'from.cidrs' | 'to.cidrs' | 'to.hosts' | 'from.userids';

export function prepareContext(ctx: UnresolvedContext, destIp: string | null): PreparedContext {
  return {
    commandBit: ctx.command === 'bind' ? CommandBit.bind : CommandBit.connect,
    src: parseIpv4(ctx.sourceIp),
    user: ctx.userId,
    host: ctx.host === null ? null : normaliseHost(ctx.host),
    dst: destIp === null ? UNRESOLVED : parseIpv4(destIp),
    port: ctx.destPort,
  };
}

/** DNS names compare case-insensitively and `example.com.` is `example.com`. */
function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Cheapest checks first; the order is also the order explanations report. */
export function findMismatch(rule: CompiledRule, p: PreparedContext): Mismatch | null {
  if ((rule.commandMask & p.commandBit) === 0) return 'commands';
  if (rule.ports !== null && !rangeSetHas(rule.ports, p.port)) return 'to.ports';
  if (rule.sourceRanges !== null && !rangeSetHas(rule.sourceRanges, p.src)) return 'from.cidrs';
  if (rule.destRanges !== null && p.dst !== UNRESOLVED && !rangeSetHas(rule.destRanges, p.dst)) return 'to.cidrs';
  // A host rule speaks about SOCKS4a names only; a plain SOCKS4 request has none to match.
  if (rule.hosts !== null && (p.host === null || !matchGlobs(rule.hosts, p.host))) return 'to.hosts';
  if (rule.userids !== null && !matchGlobs(rule.userids, p.user)) return 'from.userids';
  return null;
}

/** The decision for a rule that matched, after the SSRF guard for allows. */
export function decideWith(rule: CompiledRule, p: PreparedContext, selfAddresses: ReadonlySet<string>): Decision {
  if (!rule.allow) return rule.decision;
  return checkGuard(p.dst, selfAddresses, rule.destCidrs) === null ? rule.decision : rule.guardedDecision;
}

function candidatesFor(set: CompiledPolicySet, p: PreparedContext): Int32Array {
  const { index } = set;
  switch (index.dimension) {
    case IndexDimension.Port: return bucketForNumber(index, p.port);
    case IndexDimension.Source: return bucketForNumber(index, p.src);
    case IndexDimension.Destination: return bucketForNumber(index, p.dst);
    case IndexDimension.UserId: return bucketForName(index, p.user);
    case IndexDimension.Host: return bucketForName(index, p.host);
    default: return bucketForNumber(index, NOT_IPV4);
  }
}

/** The first rule that matches `p`, in evaluation order; null when none does. */
export function findFirstMatch(set: CompiledPolicySet, p: PreparedContext): CompiledRule | null {
  const { rules, index } = set;
  const general = index.general;
  const bucket = candidatesFor(set, p);
  const gn = general.length;
  const bn = bucket.length;
  let g = 0;
  let b = 0;
  // Merge two ascending position lists; each step advances one of them, so this ends.
  while (g < gn || b < bn) {
    const gp = g < gn ? (general[g] as number) : Infinity;
    const bp = b < bn ? (bucket[b] as number) : Infinity;
    let position: number;
    if (gp < bp) {
      position = gp;
      g++;
    } else {
      position = bp;
      b++;
    }
    const rule = rules[position] as CompiledRule;
    if (findMismatch(rule, p) === null) return rule;
  }
  return null;
}

/** Decides one request: the first matching rule wins, no match denies (NoRuleMatched). */
export function evaluate(set: CompiledPolicySet, ctx: EvalContext): Decision {
  const p = prepareContext(ctx, ctx.destIp);
  const rule = findFirstMatch(set, p);
  return rule === null ? NO_RULE_MATCHED : decideWith(rule, p, ctx.selfAddresses);
}

/**
 * Decides a SOCKS4a request before its name is resolved, when that is possible: a deny Decision
 * when no rule could allow it whatever the name resolves to, or null when resolution is needed.
 * Lets the server skip DNS lookups for names no rule could allow.
 */
export function decideBeforeResolve(set: CompiledPolicySet, ctx: UnresolvedContext): Decision | null {
  const p = prepareContext(ctx, null);
  for (const rule of set.rules) {
    if (findMismatch(rule, p) !== null) continue;
    if (rule.allow) return null;
    // A deny rule without `to.cidrs` matches whatever the address; with them, it might not.
    if (rule.destRanges === null) return rule.decision;
  }
  return NO_RULE_MATCHED;
}

/** True when some resolution of the name could still be allowed (so resolving is worthwhile). */
export function couldAllowBeforeResolve(set: CompiledPolicySet, ctx: UnresolvedContext): boolean {
  return decideBeforeResolve(set, ctx) === null;
}

export { NO_RULE_MATCHED };
