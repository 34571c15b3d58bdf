// The one definition of the Socks4Policy and ClusterSocks4Policy schema: plain data, one entry per
// field (type, enum, pattern, bounds, default, description, CEL rules). From it
// scripts/gen-crds.ts writes both CRDs' openAPIV3Schema (`make generate`); validate.ts reads its
// field names, enums, bounds and patterns; types.ts is checked against it at compile time
// (schema-types.ts). Edit here, then run `make generate`.
//
// The API server refuses what it can decide cheaply (shapes, bounds, formats, unknown fields
// under strict validation); CEL rules cover what a schema cannot say. The operator still
// validates every object with validate.ts, so an object that gets past the CRD but not that check
// is reported Ready=False, never published. Both accept the same files: every bound here is the
// validator's bound.

import {
  BandwidthKey,
  ClusterTier,
  DEFAULT_ENFORCEMENT,
  DEFAULT_PRIORITY,
  Enforcement,
  IdentMode,
  LimitKey,
  RuleAction,
  RuleCommand,
} from './types.ts';

/** A field of the schema, in OpenAPI v3 terms; `cel` and `listType` become `x-kubernetes-*`. */
export interface FieldSchema {
  readonly type?: 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array';
  readonly description?: string;
  readonly enum?: readonly string[];
  readonly default?: string | number;
  readonly format?: string;
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: boolean;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly items?: FieldSchema;
  readonly properties?: { readonly [key: string]: FieldSchema };
  readonly required?: readonly string[];
  readonly listType?: 'set' | 'map';
  readonly listMapKeys?: readonly string[];
  readonly cel?: readonly CelRule[];
}

export interface CelRule {
  readonly rule: string;
  readonly message: string;
  readonly fieldPath?: string;
}

/** Rules per policy: keeps compile time and snapshot size predictable. */
export const MAX_RULES_PER_POLICY = 1000;
/** Upper bound for every list in a policy but `to.ports`. */
export const MAX_LIST_ENTRIES = 1000;
/**
 * Port lists are shorter: the CRD's CEL rule that checks each range is ordered runs per entry, and
 * 1000 rules x 1000 ports exceeds the API server's CEL cost budget (it refuses such a CRD). A file
 * must be refused exactly where `kubectl apply` would be, so the validator uses the same bound.
 */
export const MAX_PORT_ENTRIES = 256;
export const MAX_PRIORITY = 1_000_000;
/** USERIDs and host globs: SOCKS4 USERIDs are NUL-terminated and at most 255 bytes on our wire. */
export const MAX_GLOB_LENGTH = 255;
/** Rule names and namespaces are DNS-1123 labels. */
export const MAX_LABEL_LENGTH = 63;
export const LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

/** JavaScript's largest exact integer: the limits are counted in doubles (Lua, JSON). */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
/** 1-65535 without leading zeros, so port 0 never matches. */
const PORT = '([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';

const CIDRS = {
  type: 'array',
  description: 'IPv4 CIDRs (a bare address means /32). Omit to match any address.',
  minItems: 1,
  maxItems: MAX_LIST_ENTRIES,
  items: {
    type: 'string',
    maxLength: 64,
    // Dotted IPv4 with an optional /0-32, or an IPv4-mapped IPv6 spelling (checked in full by
    // validate.ts).
    pattern: `^((${OCTET}\\.){3}${OCTET}(/(3[0-2]|[12]?[0-9]))?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?)$`,
  },
} as const;

const LIMIT_KEY = { type: 'string', enum: Object.values(LimitKey) } as const;

const LIMITS = {
  type: 'object',
  properties: {
    connectionRate: {
      type: 'object',
      required: ['perSecond', 'burst', 'key'],
      // A bucket smaller than one second of refill can never deliver the configured rate.
      cel: [
        {
          rule: 'double(self.burst) >= double(self.perSecond)',
          fieldPath: '.burst',
          message: 'burst must be at least perSecond',
        },
      ],
      properties: {
        perSecond: { type: 'number', minimum: 0, exclusiveMinimum: true, maximum: MAX_COUNT },
        burst: { type: 'integer', minimum: 1, maximum: MAX_COUNT },
        key: LIMIT_KEY,
      },
    },
    concurrentSessions: {
      type: 'object',
      required: ['max', 'key'],
      properties: {
        max: { type: 'integer', minimum: 1, maximum: MAX_COUNT },
        key: LIMIT_KEY,
      },
    },
    bandwidth: {
      type: 'object',
      required: ['bytesPerSecond', 'key'],
      properties: {
        bytesPerSecond: { type: 'integer', minimum: 1, maximum: MAX_COUNT },
        key: { type: 'string', enum: Object.values(BandwidthKey) },
      },
    },
  },
} as const;

const RULE_NAME = {
  type: 'string',
  maxLength: MAX_LABEL_LENGTH,
  pattern: LABEL_PATTERN,
  description: 'Unique within the policy; names the rule in logs, traces and limit keys.',
} as const;

const COMMANDS = {
  type: 'array',
  description: 'Omit to match Connect and Bind.',
  minItems: 1,
  maxItems: 2,
  listType: 'set',
  items: { type: 'string', enum: Object.values(RuleCommand) },
} as const;

const FROM = {
  type: 'object',
  properties: {
    cidrs: CIDRS,
    userids: {
      type: 'array',
      description: 'Exact USERIDs or globs (* any run, ? one character). Omit to match any USERID.',
      minItems: 1,
      maxItems: MAX_LIST_ENTRIES,
      items: { type: 'string', minLength: 1, maxLength: MAX_GLOB_LENGTH, pattern: '^[^\\x00]+$' },
    },
  },
} as const;

const TO = {
  type: 'object',
  properties: {
    cidrs: CIDRS,
    hosts: {
      type: 'array',
      description:
        'SOCKS4a host name globs, case-insensitive; internationalised names are stored as punycode (IDNA/UTS-46). Omit to match any destination.',
      minItems: 1,
      maxItems: MAX_LIST_ENTRIES,
      // No controls or spaces; the rest (IDNA conversion, labels) is checked in full by validate.ts.
      items: { type: 'string', maxLength: MAX_GLOB_LENGTH, pattern: '^[^\\x00-\\x20]+$' },
    },
    ports: {
      type: 'array',
      description: 'Ports ("443") or inclusive ranges ("8000-8999") as strings. Omit to match any port.',
      minItems: 1,
      maxItems: MAX_PORT_ENTRIES,
      items: {
        type: 'string',
        maxLength: 11,
        cel: [
          {
            rule: "!self.contains('-') || int(self.split('-')[0]) <= int(self.split('-')[1])",
            message: 'a port range is written low-high, like "8000-8999"',
          },
        ],
        pattern: `^${PORT}(-${PORT})?$`,
      },
    },
  },
} as const;

const IDENT = {
  type: 'string',
  enum: Object.values(IdentMode),
  description: "RFC 1413 check of the client's USERID. Quote the value (YAML 1.1 reads Off as false).",
} as const;

/** One rule; `actions` differ by kind (only a cluster policy may Pass). */
const rule = <A extends readonly RuleAction[]>(actions: A, actionDescription?: string) =>
  ({
    type: 'object',
    required: ['name', 'action'],
    properties: {
      name: RULE_NAME,
      action: {
        type: 'string',
        enum: actions,
        ...(actionDescription === undefined ? {} : { description: actionDescription }),
      },
      commands: COMMANDS,
      from: FROM,
      to: TO,
      ident: IDENT,
      limits: LIMITS,
    },
  }) as const;

const PRIORITY = { type: 'integer', minimum: 0, maximum: MAX_PRIORITY, default: DEFAULT_PRIORITY } as const;

const ENFORCEMENT = {
  type: 'string',
  enum: Object.values(Enforcement),
  default: DEFAULT_ENFORCEMENT,
  description:
    'Enforce decides sessions. Report evaluates the policy in its place and records what it would have decided (log field, span attributes, socks4_report_decisions_total) while sessions go on as if it were absent; its limits are counted but never refuse. Switch to Enforce with this one word.',
} as const;

const rules = <R>(items: R) =>
  ({
    type: 'array',
    maxItems: MAX_RULES_PER_POLICY,
    description: 'Evaluated in order; the first rule that matches decides; no match denies.',
    cel: [
      {
        rule: 'self.map(r, r.name).distinct().size() == self.size()',
        message: 'rule names must be unique within a policy',
      },
    ],
    items,
  }) as const;

/** `spec` of a Socks4Policy. */
export const POLICY_SPEC = {
  type: 'object',
  required: ['rules'],
  properties: {
    priority: { ...PRIORITY, description: 'Policies are evaluated by priority (lower first), then namespace/name.' },
    enforcement: ENFORCEMENT,
    rules: rules(rule([RuleAction.Allow, RuleAction.Deny] as const)),
  },
} as const satisfies FieldSchema;

/** `spec` of a ClusterSocks4Policy: the same, plus a tier and the action Pass. */
export const CLUSTER_POLICY_SPEC = {
  type: 'object',
  required: ['rules'],
  // Pass hands a request down to the namespace tier; a Baseline policy is evaluated after it.
  cel: [
    {
      rule: "!has(self.tier) || self.tier != 'Baseline' || self.rules.all(r, r.action != 'Pass')",
      message: 'Pass hands a request to the namespace tier: a Baseline policy comes after it and cannot pass',
    },
  ],
  properties: {
    priority: {
      ...PRIORITY,
      description: 'Cluster policies of one tier are evaluated by priority (lower first), then name.',
    },
    tier: {
      type: 'string',
      enum: Object.values(ClusterTier),
      default: ClusterTier.Admin,
      description: "Admin: evaluated before every namespace's policies. Baseline: after them, before the default deny.",
    },
    enforcement: ENFORCEMENT,
    rules: rules(
      rule(
        Object.values(RuleAction),
        "Pass (tier Admin only): skip the rest of the cluster tier; the client's namespace decides.",
      ),
    ),
  },
} as const satisfies FieldSchema;

/** `status`, written by the operator (PolicyStatus in operator/reconcile.ts, which typecheck holds to this). */
export const POLICY_STATUS = {
  type: 'object',
  description: 'Written by the operator.',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    ruleCount: { type: 'integer', minimum: 0, description: 'Rules of this policy in the published snapshot.' },
    snapshotVersion: {
      type: 'string',
      maxLength: 64,
      description:
        "The first rules snapshot in Redis that carried this generation of the policy; later snapshots carry it too, until the policy changes. (Naming the newest one would rewrite every policy's status whenever any policy changes.)",
    },
    enforcement: {
      type: 'string',
      enum: Object.values(Enforcement),
      description: 'How the fleet applies the published policy (Report = recorded, not enforced).',
    },
    conditions: {
      type: 'array',
      maxItems: 8,
      listType: 'map',
      listMapKeys: ['type'],
      // metav1.Condition's own bounds.
      items: {
        type: 'object',
        required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
        properties: {
          type: { type: 'string', maxLength: 316 },
          status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
          observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
          lastTransitionTime: { type: 'string', format: 'date-time' },
          reason: { type: 'string', maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
          message: { type: 'string', maxLength: 32768 },
        },
      },
    },
  },
} as const satisfies FieldSchema;

/** The fields of one rule and its parts, for the validator's unknown-field check. */
const clusterRule = CLUSTER_POLICY_SPEC.properties.rules.items;
export const SPEC_FIELDS = Object.keys(CLUSTER_POLICY_SPEC.properties) as readonly string[];
export const RULE_FIELDS = Object.keys(clusterRule.properties) as readonly string[];
export const FROM_FIELDS = Object.keys(FROM.properties) as readonly string[];
export const TO_FIELDS = Object.keys(TO.properties) as readonly string[];
export const LIMITS_FIELDS = Object.keys(LIMITS.properties) as readonly string[];
export const CONNECTION_RATE_FIELDS = Object.keys(LIMITS.properties.connectionRate.properties) as readonly string[];
export const CONCURRENT_SESSIONS_FIELDS = Object.keys(
  LIMITS.properties.concurrentSessions.properties,
) as readonly string[];
export const BANDWIDTH_FIELDS = Object.keys(LIMITS.properties.bandwidth.properties) as readonly string[];
