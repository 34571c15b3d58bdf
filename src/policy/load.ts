// Multi-document YAML → validated Socks4Policy objects. The same file works with
// `kubectl apply -f` and `socks4-fleet proxy --policy-file`, so this reads exactly what the CRD
// holds: one Socks4Policy per document, empty documents ignored.

import { parseAllDocuments } from 'yaml';
import { CLUSTER_KIND, DEFAULT_NAMESPACE, DEFAULT_PRIORITY, policyId } from './types.ts';
import type { Issue, Socks4Policy } from './types.ts';
import { isRecord } from './validate-fields.ts';
import { MAX_MATCH_COST_PER_SET } from './match-cost.ts';
import { policyMatchCost, validatePolicy } from './validate.ts';
import { errorMessage } from '../errors.ts';

export interface LoadResult {
  /** Valid documents only, with `metadata.namespace` and `spec.priority` defaults filled in. */
  readonly policies: Socks4Policy[];
  /**
   * Every problem in the text. Paths are prefixed with the policy they belong to
   * (`default/office: spec.rules[0].name`) or, when a document has no usable name, with
   * `<sourceName> document <n>` (n counts documents from 1, empty ones included).
   */
  readonly issues: Issue[];
}

/** Aliases expand on load; a small cap refuses "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

export function loadPolicyText(text: string, sourceName: string): LoadResult {
  const policies: Socks4Policy[] = [];
  const issues: Issue[] = [];
  const seen = new Map<string, number>();
  const docs = parseAllDocuments(text, { prettyErrors: true });
  docs.forEach((doc, i) => {
    const docLabel = `${sourceName} document ${i + 1}`;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) issues.push({ path: docLabel, message: firstLine(err.message) });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      issues.push({ path: docLabel, message: firstLine(errorMessage(err)) });
      return;
    }
    if (value === null || value === undefined) return;
    const id = policyIdOf(value);
    const prefix = id ?? docLabel;
    const found = validatePolicy(value);
    for (const issue of found)
      issues.push({ path: issue.path === '' ? prefix : `${prefix}: ${issue.path}`, message: issue.message });
    if (id !== null) {
      const first = seen.get(id);
      if (first !== undefined) {
        issues.push({
          path: `${id}: metadata.name`,
          message: `duplicate policy ${id} (first defined in document ${first})`,
        });
        return;
      }
      seen.set(id, i + 1);
    }
    if (found.length === 0) policies.push(withDefaults(value as Socks4Policy));
  });
  const cost = policies.reduce((n, p) => n + policyMatchCost(p.spec.rules), 0);
  if (cost > MAX_MATCH_COST_PER_SET) {
    issues.push({
      path: sourceName,
      message: `its policies' globs may cost ${cost} comparisons a decision together, at most ${MAX_MATCH_COST_PER_SET} are allowed (use exact names, prefix* or *suffix, or fewer patterns with a middle '*' or '?')`,
    });
  }
  return { policies, issues };
}

/** `namespace/name` (`name` for the cluster kind) when the document names itself well enough to be told apart. */
function policyIdOf(value: unknown): string | null {
  if (!isRecord(value) || !isRecord(value.metadata)) return null;
  const { name } = value.metadata;
  if (typeof name !== 'string' || name === '') return null;
  return policyId({ kind: value.kind, metadata: value.metadata });
}

function withDefaults(doc: Socks4Policy): Socks4Policy {
  if (doc.kind === CLUSTER_KIND)
    return { ...doc, spec: { ...doc.spec, priority: doc.spec.priority ?? DEFAULT_PRIORITY } };
  return {
    ...doc,
    metadata: { ...doc.metadata, namespace: doc.metadata.namespace ?? DEFAULT_NAMESPACE },
    spec: { ...doc.spec, priority: doc.spec.priority ?? DEFAULT_PRIORITY },
  };
}

function firstLine(message: string): string {
  const nl = message.indexOf('\n');
  return (nl === -1 ? message : message.slice(0, nl)).replace(/:$/, '');
}
