// Small, strict readers for untyped YAML/JSON values. Each records an Issue naming the exact field
// path and returns the value only when it has the expected shape, so validation reports every
// problem in one pass instead of stopping at the first.

import { MAX_LIST_ENTRIES } from './schema.ts';
import type { Issue } from './types.ts';

// Bounds live with the schema the CRDs are generated from (schema.ts): kubectl and the proxy agree.
export { MAX_LIST_ENTRIES, MAX_PORT_ENTRIES } from './schema.ts';

export function addIssue(issues: Issue[], path: string, message: string): void {
  issues.push({ path, message });
}

/** `spec.rules[2].to.ports[0]: "70000" is not a port`. */
export function formatIssue(issue: Issue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`;
}

/** A value as a person would recognise it in their YAML. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 61)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function joinPath(path: string, key: string): string {
  if (!PLAIN_KEY.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

export function indexPath(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** Refuses fields outside `known`: a typo (`form:` for `from:`) must not silently widen a rule. */
export function checkKnownFields(
  issues: Issue[],
  path: string,
  obj: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key))
      addIssue(issues, joinPath(path, key), `unknown field (known fields: ${known.join(', ')})`);
  }
}

export function readRecord(issues: Issue[], path: string, v: unknown): Record<string, unknown> | null {
  if (isRecord(v)) return v;
  addIssue(issues, path, `must be a mapping, got ${describe(v)}`);
  return null;
}

export function readString(issues: Issue[], path: string, v: unknown): string | null {
  if (typeof v === 'string') return v;
  addIssue(issues, path, `must be a string, got ${describe(v)}`);
  return null;
}

/**
 * A non-empty list of at most MAX_LIST_ENTRIES. An empty list is refused rather than read as
 * "matches nothing" or "matches anything": omitting the field is the one way to say "any".
 */
export function readList(
  issues: Issue[],
  path: string,
  v: unknown,
  emptyHint: string,
  max = MAX_LIST_ENTRIES,
): unknown[] | null {
  if (!Array.isArray(v)) {
    addIssue(issues, path, `must be a list, got ${describe(v)}`);
    return null;
  }
  if (v.length === 0) {
    addIssue(issues, path, `must not be empty (${emptyHint})`);
    return null;
  }
  if (v.length > max) {
    addIssue(issues, path, `has ${v.length} entries, at most ${max} are allowed`);
    return null;
  }
  return v;
}

export function readEnum<T extends string>(issues: Issue[], path: string, v: unknown, values: readonly T[]): T | null {
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  let message = `must be one of ${values.join(', ')}, got ${describe(v)}`;
  if (typeof v === 'boolean') {
    // YAML 1.1 (kubectl) reads unquoted Off/On/Yes/No as booleans.
    message += `; quote the value, e.g. "${values[0]}"`;
  }
  addIssue(issues, path, message);
  return null;
}

export function readInteger(
  issues: Issue[],
  path: string,
  v: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max) return v;
  const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
  addIssue(issues, path, `must be an integer ${range}, got ${describe(v)}`);
  return null;
}

export function requireField(issues: Issue[], path: string, obj: Record<string, unknown>, key: string): unknown {
  const v = obj[key];
  if (v === undefined || v === null) {
    addIssue(issues, joinPath(path, key), 'is required');
    return undefined;
  }
  return v;
}
