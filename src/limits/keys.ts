// Limit keys: `rule|ip`, `rule|userid` or `rule`. The parts come from clients (USERID is any
// 255 bytes but NUL) and from policy authors, so each part is percent-encoded: the separators
// `|` and `:`, Redis Cluster hash-tag braces `{}` and control bytes can then never appear inside
// a part, and two different (rule, kind, value) triples never share a key. The Redis limiter
// builds its key names from these too, so both limiters scope budgets identically.

import type { AdmitRequest, LimitKey } from './types.ts';

/** Tags the value kind, so a USERID that looks like an address never shares an IP's budget. */
const KindTag = { SourceIP: 'ip', UserID: 'user' } as const;

const UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]*$/;

/**
 * Percent-encodes everything but [A-Za-z0-9-_.!~*'()]; `*` stays, it is inert in a key name.
 * toWellFormed: encodeURIComponent throws on a lone surrogate, and this runs on the hot path.
 */
export function encodeKeyPart(part: string): string {
  // Rule ids and dotted addresses are usually all unreserved: checked with one scan and returned
  // as they are, with no copies (profiled: ~1% of handshake CPU, three keys per admission).
  return UNRESERVED.test(part) ? part : encodeURIComponent(part.toWellFormed());
}

// Rule ids hold '/' (namespace/policy/rule), so they never take the fast path above; they are
// few (the rules in force), so each is encoded once (profiled: 1% of handshake CPU, embedded).
const encodedRuleIds = new Map<string, string>();
const MAX_ENCODED_RULE_IDS = 65_536; // past it (rules churned by many pushes) start over

export function encodeRuleId(ruleId: string): string {
  let encoded = encodedRuleIds.get(ruleId);
  if (encoded === undefined) {
    if (encodedRuleIds.size >= MAX_ENCODED_RULE_IDS) encodedRuleIds.clear();
    encoded = encodeKeyPart(ruleId);
    encodedRuleIds.set(ruleId, encoded);
  }
  return encoded;
}

export function buildLimitKey(kind: LimitKey, req: Pick<AdmitRequest, 'ruleId' | 'sourceIp' | 'userId'>): string {
  const rule = encodeRuleId(req.ruleId);
  switch (kind) {
    case 'Rule':
      return rule;
    case 'SourceIP':
      return `${rule}|${KindTag.SourceIP}|${encodeKeyPart(req.sourceIp)}`;
    case 'UserID':
      return `${rule}|${KindTag.UserID}|${encodeKeyPart(req.userId)}`;
  }
}
