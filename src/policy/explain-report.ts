// Explanations when Report policies are loaded: every rule in evaluation order, Report ones
// marked, the first matching Report rule recorded and passed over, the first matching enforced
// rule deciding. Same checks as evaluate() and evaluateReport(), so what it prints is what the
// proxy decides and records.

import type { CompiledPolicySet } from './compile.ts';
import { NO_RULE_MATCHED } from './compile.ts';
import { decideWith, findMismatch, prepareContext } from './evaluate.ts';
import { describeGuard, describeMismatch, explainDecision, formatRuleRef } from './explain.ts';
import type { Decision, EvalContext } from './types.ts';

export interface ReportExplanation {
  /** What the proxy does (evaluate()). */
  readonly decision: Decision;
  /** What a Report policy would have done and is recorded (evaluateReport()), or null. */
  readonly report: Decision | null;
  readonly lines: string[];
}

export const REPORT_MARK = '[Report]';

export function explainWithReport(set: CompiledPolicySet, ctx: EvalContext): ReportExplanation {
  const view = set.report;
  if (view === null) return { ...explainDecision(set, ctx), report: null };
  const p = prepareContext(view.all, ctx, ctx.destIp);
  const lines: string[] = [];
  let report: Decision | null = null;
  for (const rule of view.all.rules) {
    const isReport = view.policies.has(rule.ref.policy);
    const label = `${formatRuleRef(rule.ref)} (${rule.source.action})${isReport ? ` ${REPORT_MARK}` : ''}`;
    const field = findMismatch(rule, p);
    if (field !== null) {
      lines.push(`skip  ${label}: ${describeMismatch(field, rule, p, ctx)}`);
      continue;
    }
    const guard = rule.allow ? describeGuard(rule, p, ctx) : null;
    if (!isReport) {
      lines.push(`match ${label}`);
      if (guard !== null) lines.push(`      ${guard}`);
      return { decision: decideWith(rule, p, ctx.selfAddresses), report, lines };
    }
    if (report === null) {
      report = decideWith(rule, p, ctx.selfAddresses);
      lines.push(
        `match ${label}: would ${report.action} (${report.reason}); recorded, not enforced, evaluation goes on`,
      );
    } else {
      lines.push(`match ${label}: not reached once enforced (an earlier Report rule would decide); passed over`);
    }
    if (guard !== null) lines.push(`      ${guard}`);
  }
  lines.push(set.rules.length === 0 ? 'no enforced rules are loaded' : 'no enforced rule matched');
  return { decision: NO_RULE_MATCHED, report, lines };
}
