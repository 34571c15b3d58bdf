// Report mode (`spec.enforcement: Report`). A Report policy decides nothing: the set the proxy
// obeys is compiled without it. What it *would* have decided is answered by a second set, every
// policy compiled as if enforced: when that set's decision comes from a Report policy's rule, the
// Report policy was reached "in its place" (nothing before it decided) and that decision is what
// it would have done. This is exactly what the fleet would decide after the one-word switch to
// Enforce, with whatever ordering compilePolicies defines (priorities, and tiers where they
// apply), because both sets come from the same compiler.

import type { CompiledPolicySet } from './compile.ts';
import { decideBeforeResolve, evaluate } from './evaluate.ts';
import { Enforcement, policyId } from './types.ts';
import type { Decision, DenyDecision, EvalContext, Socks4Policy, UnresolvedContext } from './types.ts';

export interface ReportView {
  /** Every policy, Report ones compiled as if enforced: what the fleet would decide after the switch. */
  readonly all: CompiledPolicySet;
  /** policyId of each Report policy (RuleRef.policy of its rules). */
  readonly policies: ReadonlySet<string>;
}

export function isReportPolicy(p: Socks4Policy): boolean {
  return p.spec.enforcement === Enforcement.Report;
}

export function reportPolicyKeys(policies: readonly Socks4Policy[]): Set<string> {
  return new Set(policies.filter(isReportPolicy).map(policyId));
}

/** The policies with Report switched to Enforce: the input of ReportView.all. */
export function asEnforced(policies: readonly Socks4Policy[]): Socks4Policy[] {
  return policies.map((p) => (isReportPolicy(p) ? { ...p, spec: { ...p.spec, enforcement: Enforcement.Enforce } } : p));
}

function fromReportPolicy<D extends Decision>(view: ReportView, would: D | null): D | null {
  return would !== null && would.rule !== null && view.policies.has(would.rule.policy) ? would : null;
}

/**
 * What a Report policy would have decided for `ctx`, or null when none would have: no Report
 * policy holds a matching rule, or an enforced rule ahead of it decided first. Pure; the caller
 * goes on with evaluate(set, ctx), which never sees Report policies.
 */
export function evaluateReport(set: CompiledPolicySet, ctx: EvalContext): Decision | null {
  const view = set.report;
  if (view === null) return null;
  return fromReportPolicy(view, evaluate(view.all, ctx));
}

/**
 * The same before a SOCKS4a name is resolved, for sessions the enforced rules refuse without a
 * DNS lookup: a Report decision when one is certain without the address, null otherwise (the
 * proxy does not resolve a name only to record what a Report policy would do).
 */
export function evaluateReportBeforeResolve(set: CompiledPolicySet, ctx: UnresolvedContext): DenyDecision | null {
  const view = set.report;
  if (view === null) return null;
  return fromReportPolicy(view, decideBeforeResolve(view.all, ctx));
}
