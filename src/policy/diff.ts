// What a push would change: two policy sets compared policy by policy (namespace/name) and rule
// by rule (name), with defaults filled in so that writing a default and omitting it compare equal.
// Pure; `socks4-fleet policy diff` prints it.

import { DEFAULT_ENFORCEMENT, DEFAULT_PRIORITY, policyId } from './types.ts';
import type { PolicyRule, Socks4Policy } from './types.ts';

export interface FieldChange {
  /** `priority`, `enforcement`, or a rule field (`action`, `to`, `limits`, ...). */
  readonly field: string;
  /** JSON of the value, or `(none)`. */
  readonly before: string;
  readonly after: string;
}

export type RuleChange =
  | { readonly kind: 'added' | 'removed'; readonly name: string; readonly action: string }
  | { readonly kind: 'changed'; readonly name: string; readonly fields: readonly FieldChange[] };

export interface Reordered {
  readonly before: readonly string[];
  readonly after: readonly string[];
}

export type PolicyChange =
  | { readonly kind: 'added' | 'removed'; readonly key: string; readonly policy: Socks4Policy }
  | {
      readonly kind: 'changed';
      readonly key: string;
      readonly fields: readonly FieldChange[];
      readonly rules: readonly RuleChange[];
      /** Rule names in order before and after, when the order of the rules both hold changed. */
      readonly reordered: Reordered | null;
    };

const RULE_FIELDS = ['action', 'commands', 'from', 'to', 'ident', 'limits'] as const;

/** Stable JSON (sorted keys) so key order in YAML never shows as a change. */
function show(value: unknown): string {
  if (value === undefined) return '(none)';
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function fieldChange(field: string, before: unknown, after: unknown): FieldChange | null {
  const b = show(before);
  const a = show(after);
  return a === b ? null : { field, before: b, after: a };
}

function diffRules(
  before: readonly PolicyRule[],
  after: readonly PolicyRule[],
): { rules: RuleChange[]; reordered: Reordered | null } {
  const old = new Map(before.map((r) => [r.name, r]));
  const next = new Map(after.map((r) => [r.name, r]));
  const rules: RuleChange[] = [];
  for (const r of after) {
    const was = old.get(r.name);
    if (was === undefined) {
      rules.push({ kind: 'added', name: r.name, action: r.action });
      continue;
    }
    // `ident: Off` is the default: written or omitted, the rule is the same.
    const ident = (x: PolicyRule): unknown => (x.ident === 'Off' ? undefined : x.ident);
    const fields = RULE_FIELDS.map((f) =>
      f === 'ident' ? fieldChange(f, ident(was), ident(r)) : fieldChange(f, was[f], r[f]),
    ).filter((c): c is FieldChange => c !== null);
    if (fields.length > 0) rules.push({ kind: 'changed', name: r.name, fields });
  }
  for (const r of before) if (!next.has(r.name)) rules.push({ kind: 'removed', name: r.name, action: r.action });
  // First match wins, so order is meaning: compare the order of the rules both versions hold.
  const kept = (list: readonly PolicyRule[], other: ReadonlyMap<string, PolicyRule>): string[] =>
    list.filter((r) => other.has(r.name)).map((r) => r.name);
  const b = kept(before, next);
  const a = kept(after, old);
  const reordered = b.join('\0') === a.join('\0') ? null : { before: b, after: a };
  return { rules, reordered };
}

/** Changes from `before` (what is live) to `after` (what would be pushed), sorted by policy key. */
export function diffPolicies(before: readonly Socks4Policy[], after: readonly Socks4Policy[]): PolicyChange[] {
  const old = new Map(before.map((p) => [policyId(p), p]));
  const next = new Map(after.map((p) => [policyId(p), p]));
  const changes: PolicyChange[] = [];
  for (const key of [...new Set([...old.keys(), ...next.keys()])].sort()) {
    const was = old.get(key);
    const now = next.get(key);
    if (was === undefined && now !== undefined) changes.push({ kind: 'added', key, policy: now });
    else if (was !== undefined && now === undefined) changes.push({ kind: 'removed', key, policy: was });
    else if (was !== undefined && now !== undefined) {
      const fields = [
        fieldChange('priority', was.spec.priority ?? DEFAULT_PRIORITY, now.spec.priority ?? DEFAULT_PRIORITY),
        fieldChange(
          'enforcement',
          was.spec.enforcement ?? DEFAULT_ENFORCEMENT,
          now.spec.enforcement ?? DEFAULT_ENFORCEMENT,
        ),
      ].filter((c): c is FieldChange => c !== null);
      const { rules, reordered } = diffRules(was.spec.rules, now.spec.rules);
      if (fields.length > 0 || rules.length > 0 || reordered !== null)
        changes.push({ kind: 'changed', key, fields, rules, reordered });
    }
  }
  return changes;
}

function describePolicy(p: Socks4Policy): string {
  const n = p.spec.rules.length;
  return `priority ${p.spec.priority ?? DEFAULT_PRIORITY}, ${p.spec.enforcement ?? DEFAULT_ENFORCEMENT}, ${n} rule${n === 1 ? '' : 's'}`;
}

/** One line per change, `+` added, `-` removed, `~` changed; details indented under their policy. */
export function formatPolicyDiff(changes: readonly PolicyChange[]): string[] {
  const lines: string[] = [];
  for (const c of changes) {
    if (c.kind !== 'changed') {
      lines.push(`${c.kind === 'added' ? '+' : '-'} policy ${c.key} (${describePolicy(c.policy)})`);
      for (const r of c.policy.spec.rules)
        lines.push(`    ${c.kind === 'added' ? '+' : '-'} rule ${r.name} (${r.action})`);
      continue;
    }
    lines.push(`~ policy ${c.key}`);
    for (const f of c.fields) lines.push(`    ${f.field}: ${f.before} -> ${f.after}`);
    for (const r of c.rules) {
      if (r.kind === 'changed') {
        lines.push(`    ~ rule ${r.name}`);
        for (const f of r.fields) lines.push(`        ${f.field}: ${f.before} -> ${f.after}`);
      } else {
        lines.push(`    ${r.kind === 'added' ? '+' : '-'} rule ${r.name} (${r.action})`);
      }
    }
    if (c.reordered !== null)
      lines.push(`    rule order: ${c.reordered.before.join(', ')} -> ${c.reordered.after.join(', ')}`);
  }
  return lines;
}
