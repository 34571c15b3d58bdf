// Strict validation of one Socks4Policy document. Every field is checked, unknown fields are
// refused, and each Issue names the exact path, because a mistyped rule in a firewall must fail
// loudly instead of quietly allowing or denying something else.

import { Buffer } from 'node:buffer';
import { canonicalizeHostGlob } from './hostname.ts';
import { parseCidr } from './ip.ts';
import { globListCost, MAX_MATCH_COST_PER_POLICY } from './match-cost.ts';
import { parsePortSpec } from './ranges.ts';
import {
  BANDWIDTH_FIELDS,
  CLUSTER_POLICY_SPEC,
  CONCURRENT_SESSIONS_FIELDS,
  CONNECTION_RATE_FIELDS,
  FROM_FIELDS,
  LABEL_PATTERN,
  LIMITS_FIELDS,
  MAX_GLOB_LENGTH,
  MAX_LABEL_LENGTH,
  MAX_PORT_ENTRIES,
  MAX_PRIORITY,
  MAX_RULES_PER_POLICY,
  POLICY_SPEC,
  RULE_FIELDS,
  SPEC_FIELDS,
  TO_FIELDS,
} from './schema.ts';
import { API_VERSION, CLUSTER_KIND, ClusterTier, IdentMode, KIND, RuleAction } from './types.ts';
import type { Issue } from './types.ts';
import {
  addIssue,
  checkKnownFields,
  describe,
  indexPath,
  joinPath,
  readEnum,
  readInteger,
  readList,
  readRecord,
  readString,
  requireField,
} from './validate-fields.ts';

export { formatIssue } from './validate-fields.ts';
// Bounds live with the schema the CRDs are generated from (schema.ts): kubectl and the proxy agree.
export { MAX_GLOB_LENGTH, MAX_PRIORITY, MAX_RULES_PER_POLICY } from './schema.ts';

const TOP_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'] as const;
// Everything the Kubernetes API server may put in ObjectMeta: objects read from the cluster
// validate with the same code as files.
const METADATA_FIELDS = [
  'name',
  'namespace',
  'labels',
  'annotations',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'finalizers',
  'ownerReferences',
  'managedFields',
  'generateName',
  'selfLink',
] as const;
const KINDS = [KIND, CLUSTER_KIND] as const;
// Enums as the CRDs list them (schema.ts).
const CLUSTER_RULE = CLUSTER_POLICY_SPEC.properties.rules.items.properties;
const CLUSTER_TIERS = CLUSTER_POLICY_SPEC.properties.tier.enum;
/** Pass hands the decision to the namespace tier: only an Admin-tier cluster policy has one below it. */
const ACTIONS = POLICY_SPEC.properties.rules.items.properties.action.enum;
const ADMIN_ACTIONS = CLUSTER_RULE.action.enum;
const COMMANDS = CLUSTER_RULE.commands.items.enum;
const IDENT_MODES = CLUSTER_RULE.ident.enum;
const ENFORCEMENTS = CLUSTER_POLICY_SPEC.properties.enforcement.enum;
const LIMITS = CLUSTER_RULE.limits.properties;
const LIMIT_KEYS = LIMITS.connectionRate.properties.key.enum;
const BANDWIDTH_KEYS = LIMITS.bandwidth.properties.key.enum;

// Kubernetes object names (DNS-1123 subdomain) and namespaces / rule names (DNS-1123 label).
const SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_RE = new RegExp(LABEL_PATTERN);
const HOST_GLOB_RE = /^[A-Za-z0-9*?._-]+$/;
const LABEL_RULES =
  "lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit";

/** Validates one parsed document; an empty result means compilePolicies accepts it. */
export function validatePolicy(doc: unknown): Issue[] {
  const issues: Issue[] = [];
  const root = isDocument(issues, doc);
  if (root === null) return issues;
  checkKnownFields(issues, '', root, TOP_FIELDS);
  const apiVersion = requireField(issues, '', root, 'apiVersion');
  if (apiVersion !== undefined && apiVersion !== API_VERSION) {
    addIssue(issues, 'apiVersion', `must be "${API_VERSION}", got ${describe(apiVersion)}`);
  }
  const kind = requireField(issues, '', root, 'kind');
  if (kind !== undefined && !(KINDS as readonly unknown[]).includes(kind))
    addIssue(issues, 'kind', `must be "${KIND}" or "${CLUSTER_KIND}", got ${describe(kind)}`);
  const cluster = kind === CLUSTER_KIND;
  const metadata = requireField(issues, '', root, 'metadata');
  if (metadata !== undefined) validateMetadata(issues, metadata, cluster);
  const spec = requireField(issues, '', root, 'spec');
  if (spec !== undefined) validateSpec(issues, spec, cluster);
  return issues;
}

function isDocument(issues: Issue[], doc: unknown): Record<string, unknown> | null {
  if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) return doc as Record<string, unknown>;
  addIssue(issues, '', `document must be a mapping, got ${describe(doc)}`);
  return null;
}

function validateMetadata(issues: Issue[], v: unknown, cluster: boolean): void {
  const meta = readRecord(issues, 'metadata', v);
  if (meta === null) return;
  checkKnownFields(issues, 'metadata', meta, METADATA_FIELDS);
  const name = requireField(issues, 'metadata', meta, 'name');
  if (name !== undefined && readString(issues, 'metadata.name', name) !== null) {
    const n = name as string;
    if (n.length > 253 || !SUBDOMAIN_RE.test(n)) {
      addIssue(
        issues,
        'metadata.name',
        `${describe(n)} is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)`,
      );
    }
  }
  if (cluster && meta.namespace !== undefined) {
    addIssue(
      issues,
      'metadata.namespace',
      `a ${CLUSTER_KIND} is cluster-scoped and has no namespace; remove metadata.namespace`,
    );
  } else if (meta.namespace !== undefined && readString(issues, 'metadata.namespace', meta.namespace) !== null) {
    const ns = meta.namespace as string;
    if (ns.length > MAX_LABEL_LENGTH || !LABEL_RE.test(ns))
      addIssue(issues, 'metadata.namespace', `${describe(ns)} is not a valid namespace (${LABEL_RULES})`);
  }
  for (const key of ['labels', 'annotations'] as const) {
    if (meta[key] === undefined) continue;
    const map = readRecord(issues, `metadata.${key}`, meta[key]);
    if (map === null) continue;
    for (const [k, val] of Object.entries(map)) readString(issues, joinPath(`metadata.${key}`, k), val);
  }
}

function validateSpec(issues: Issue[], v: unknown, cluster: boolean): void {
  const spec = readRecord(issues, 'spec', v);
  if (spec === null) return;
  checkKnownFields(issues, 'spec', spec, SPEC_FIELDS);
  if (spec.priority !== undefined) readInteger(issues, 'spec.priority', spec.priority, 0, MAX_PRIORITY);
  if (spec.enforcement !== undefined) readEnum(issues, 'spec.enforcement', spec.enforcement, ENFORCEMENTS);
  let tier: string | null = ClusterTier.Admin;
  if (spec.tier !== undefined) {
    if (cluster) tier = readEnum(issues, 'spec.tier', spec.tier, CLUSTER_TIERS);
    else addIssue(issues, 'spec.tier', `only a ${CLUSTER_KIND} has a tier; a ${KIND} always governs its own namespace`);
  }
  const actions = cluster && tier === ClusterTier.Admin ? ADMIN_ACTIONS : ACTIONS;
  const rules = requireField(issues, 'spec', spec, 'rules');
  if (rules === undefined) return;
  if (!Array.isArray(rules)) {
    addIssue(issues, 'spec.rules', `must be a list, got ${describe(rules)}`);
    return;
  }
  if (rules.length > MAX_RULES_PER_POLICY) {
    addIssue(issues, 'spec.rules', `has ${rules.length} rules, at most ${MAX_RULES_PER_POLICY} are allowed`);
    return;
  }
  const seen = new Map<string, string>();
  rules.forEach((rule, i) => validateRule(issues, indexPath('spec.rules', i), rule, seen, actions));
  const cost = policyMatchCost(rules);
  if (cost > MAX_MATCH_COST_PER_POLICY) {
    addIssue(
      issues,
      'spec.rules',
      `its globs may cost ${cost} comparisons a decision, at most ${MAX_MATCH_COST_PER_POLICY} are allowed ` +
        `(use exact names, prefix* or *suffix, fewer patterns with a middle '*' or '?', or split the rules across policies)`,
    );
  }
}

/** Worst-case glob work of one decision over these rules (match-cost.ts); invalid parts cost 0. */
export function policyMatchCost(rules: readonly unknown[]): number {
  let cost = 0;
  for (const rule of rules) {
    if (typeof rule !== 'object' || rule === null) continue;
    const { from, to } = rule as { from?: { userids?: unknown }; to?: { hosts?: unknown } };
    if (Array.isArray(from?.userids)) cost += globListCost(from.userids);
    if (Array.isArray(to?.hosts)) cost += globListCost(to.hosts);
  }
  return cost;
}

function validateRule(
  issues: Issue[],
  path: string,
  v: unknown,
  seen: Map<string, string>,
  actions: readonly string[],
): void {
  const rule = readRecord(issues, path, v);
  if (rule === null) return;
  checkKnownFields(issues, path, rule, RULE_FIELDS);
  const name = requireField(issues, path, rule, 'name');
  if (name !== undefined && readString(issues, `${path}.name`, name) !== null) {
    const n = name as string;
    const previous = seen.get(n);
    if (n.length > MAX_LABEL_LENGTH || !LABEL_RE.test(n))
      addIssue(issues, `${path}.name`, `${describe(n)} is not a valid rule name (${LABEL_RULES})`);
    else if (previous !== undefined)
      addIssue(issues, `${path}.name`, `duplicate rule name ${describe(n)} (also ${previous})`);
    else seen.set(n, path);
  }
  const actionValue = requireField(issues, path, rule, 'action');
  const action = actionValue === undefined ? null : readAction(issues, `${path}.action`, actionValue, actions);
  if (rule.commands !== undefined) validateCommands(issues, `${path}.commands`, rule.commands);
  if (rule.from !== undefined) validateFrom(issues, `${path}.from`, rule.from);
  if (rule.to !== undefined) validateTo(issues, `${path}.to`, rule.to);
  if (rule.ident !== undefined) {
    const ident = readEnum(issues, `${path}.ident`, rule.ident, IDENT_MODES);
    // Ident and limits only act on sessions a rule lets through; on a Deny rule they are a mistake.
    if (action !== null && action !== RuleAction.Allow && ident !== null && ident !== IdentMode.Off) {
      addIssue(
        issues,
        `${path}.ident`,
        `only Allow rules take ident checks, got ${describe(ident)} on a ${action} rule`,
      );
    }
  }
  if (rule.limits !== undefined) {
    validateLimits(issues, `${path}.limits`, rule.limits);
    if (action !== null && action !== RuleAction.Allow)
      addIssue(issues, `${path}.limits`, 'only Allow rules take limits');
  }
}

/** An action, with the reason when Pass is written where there is no namespace tier to pass to. */
function readAction(issues: Issue[], path: string, v: unknown, actions: readonly string[]): string | null {
  if (v === RuleAction.Pass && !actions.includes(RuleAction.Pass)) {
    addIssue(
      issues,
      path,
      `Pass hands the decision to the client's namespace: only a ${CLUSTER_KIND} of tier Admin takes it; use Allow or Deny`,
    );
    return null;
  }
  return readEnum(issues, path, v, actions);
}

function validateCommands(issues: Issue[], path: string, v: unknown): void {
  const list = readList(issues, path, v, 'omit it to match Connect and Bind');
  if (list === null) return;
  const seen = new Set<string>();
  list.forEach((c, i) => {
    const cmd = readEnum(issues, indexPath(path, i), c, COMMANDS);
    if (cmd === null) return;
    if (seen.has(cmd)) addIssue(issues, indexPath(path, i), `duplicate ${describe(cmd)}`);
    seen.add(cmd);
  });
}

function validateFrom(issues: Issue[], path: string, v: unknown): void {
  const from = readRecord(issues, path, v);
  if (from === null) return;
  checkKnownFields(issues, path, from, FROM_FIELDS);
  if (from.cidrs !== undefined) validateCidrs(issues, `${path}.cidrs`, from.cidrs);
  if (from.userids !== undefined) {
    const list = readList(issues, `${path}.userids`, from.userids, 'omit it to match any USERID');
    list?.forEach((u, i) => {
      const p = indexPath(`${path}.userids`, i);
      const s = readString(issues, p, u);
      if (s === null) return;
      // SOCKS4 USERIDs are NUL-terminated and at most 255 bytes on our wire.
      if (s.includes('\0')) addIssue(issues, p, 'must not contain NUL');
      else if (Buffer.byteLength(s, 'utf8') > MAX_GLOB_LENGTH)
        addIssue(issues, p, `must be at most ${MAX_GLOB_LENGTH} bytes, got ${Buffer.byteLength(s, 'utf8')}`);
    });
  }
}

function validateTo(issues: Issue[], path: string, v: unknown): void {
  const to = readRecord(issues, path, v);
  if (to === null) return;
  checkKnownFields(issues, path, to, TO_FIELDS);
  if (to.cidrs !== undefined) validateCidrs(issues, `${path}.cidrs`, to.cidrs);
  if (to.hosts !== undefined) {
    const list = readList(issues, `${path}.hosts`, to.hosts, 'omit it to match any destination');
    list?.forEach((h, i) => {
      const p = indexPath(`${path}.hosts`, i);
      const s = readString(issues, p, h);
      if (s === null) return;
      // Checked in the canonical form requests are matched in (IDNA/UTS-46, see hostname.ts).
      const canonical = canonicalizeHostGlob(s);
      if (!canonical.ok)
        addIssue(
          issues,
          p,
          `${describe(s)} is not a host name glob: ${canonical.message} (use letters, digits, '-', '.', '_', '*', '?' or an internationalised name)`,
        );
      else if (canonical.glob.length > MAX_GLOB_LENGTH)
        addIssue(issues, p, `must be at most ${MAX_GLOB_LENGTH} characters, got ${canonical.glob.length}`);
      else if (!HOST_GLOB_RE.test(canonical.glob))
        addIssue(issues, p, `${describe(s)} is not a host name glob (letters, digits, '-', '.', '_', '*' and '?')`);
    });
  }
  if (to.ports !== undefined) {
    const list = readList(issues, `${path}.ports`, to.ports, 'omit it to match any port', MAX_PORT_ENTRIES);
    list?.forEach((port, i) => {
      const p = indexPath(`${path}.ports`, i);
      if (typeof port === 'number') {
        addIssue(issues, p, `must be a string, got ${port}; quote it: "${port}"`);
        return;
      }
      const s = readString(issues, p, port);
      if (s === null) return;
      const parsed = parsePortSpec(s);
      if (!parsed.ok) addIssue(issues, p, parsed.message);
    });
  }
}

function validateCidrs(issues: Issue[], path: string, v: unknown): void {
  const list = readList(issues, path, v, 'omit it to match any address');
  list?.forEach((c, i) => {
    const p = indexPath(path, i);
    const s = readString(issues, p, c);
    if (s !== null && parseCidr(s) === null) addIssue(issues, p, `${describe(s)} is not an IPv4 CIDR`);
  });
}

function validateLimits(issues: Issue[], path: string, v: unknown): void {
  const limits = readRecord(issues, path, v);
  if (limits === null) return;
  checkKnownFields(issues, path, limits, LIMITS_FIELDS);
  if (limits.connectionRate !== undefined) {
    const p = `${path}.connectionRate`;
    const rate = readRecord(issues, p, limits.connectionRate);
    if (rate !== null) {
      checkKnownFields(issues, p, rate, CONNECTION_RATE_FIELDS);
      const perSecondValue = requireField(issues, p, rate, 'perSecond');
      let perSecond: number | null = null;
      if (perSecondValue !== undefined) {
        if (
          typeof perSecondValue === 'number' &&
          Number.isFinite(perSecondValue) &&
          perSecondValue > 0 &&
          perSecondValue <= Number.MAX_SAFE_INTEGER
        )
          perSecond = perSecondValue;
        else addIssue(issues, `${p}.perSecond`, `must be a number greater than 0, got ${describe(perSecondValue)}`);
      }
      const burstValue = requireField(issues, p, rate, 'burst');
      const burst =
        burstValue === undefined
          ? null
          : readInteger(issues, `${p}.burst`, burstValue, LIMITS.connectionRate.properties.burst.minimum);
      // A bucket smaller than one second of refill can never deliver the configured rate.
      if (perSecond !== null && burst !== null && burst < perSecond) {
        addIssue(issues, `${p}.burst`, `must be at least perSecond (${perSecond}), got ${burst}`);
      }
      readKey(issues, p, rate, LIMIT_KEYS);
    }
  }
  if (limits.concurrentSessions !== undefined) {
    const p = `${path}.concurrentSessions`;
    const conc = readRecord(issues, p, limits.concurrentSessions);
    if (conc !== null) {
      checkKnownFields(issues, p, conc, CONCURRENT_SESSIONS_FIELDS);
      const max = requireField(issues, p, conc, 'max');
      if (max !== undefined) readInteger(issues, `${p}.max`, max, LIMITS.concurrentSessions.properties.max.minimum);
      readKey(issues, p, conc, LIMIT_KEYS);
    }
  }
  if (limits.bandwidth !== undefined) {
    const p = `${path}.bandwidth`;
    const bw = readRecord(issues, p, limits.bandwidth);
    if (bw !== null) {
      checkKnownFields(issues, p, bw, BANDWIDTH_FIELDS);
      const bps = requireField(issues, p, bw, 'bytesPerSecond');
      if (bps !== undefined)
        readInteger(issues, `${p}.bytesPerSecond`, bps, LIMITS.bandwidth.properties.bytesPerSecond.minimum);
      readKey(issues, p, bw, BANDWIDTH_KEYS);
    }
  }
}

function readKey(issues: Issue[], path: string, obj: Record<string, unknown>, keys: readonly string[]): void {
  const key = requireField(issues, path, obj, 'key');
  if (key !== undefined) readEnum(issues, `${path}.key`, key, keys);
}
