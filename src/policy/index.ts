// The policy engine's surface in one import, for the benches (bench/policy-engine.ts,
// bench/policy-worst-case.ts, bench/fleet-scaling.ts). Code in src/ and operator/ imports the
// files it needs directly.

export * from './types.ts';
export { loadPolicyText } from './load.ts';
export type { LoadResult } from './load.ts';
export { formatIssue, validatePolicy, MAX_PRIORITY, MAX_RULES_PER_POLICY } from './validate.ts';
export { MAX_LIST_ENTRIES } from './validate-fields.ts';
export { compilePolicies, NO_RULE_MATCHED } from './compile.ts';
export type { CompiledPolicySet, CompiledRule } from './compile.ts';
export { couldAllowBeforeResolve, decideBeforeResolve, evaluate } from './evaluate.ts';
export { asEnforced, evaluateReport, evaluateReportBeforeResolve, isReportPolicy, reportPolicyKeys } from './report.ts';
export type { ReportView } from './report.ts';
export { explainDecision, formatLimits, formatRuleRef } from './explain.ts';
export type { Explanation } from './explain.ts';
export { ADDRESS_CLASSES, checkGuard, classifyAddress, classifyDestination, GuardedRange } from './guard.ts';
export type { AddressClass, FleetEndpointKind, GuardHit } from './guard.ts';
export { FleetEndpointSet } from './fleet-endpoints.ts';
export type { FleetEndpoint, FleetEndpoints } from './fleet-endpoints.ts';
export { formatIpv4, parseCidr, parseIpv4, NOT_IPV4 } from './ip.ts';
