// The one-line messages `policy validate` prints: each names the field (its path) and says what is
// wrong or what to write instead (DESIGN.md, README). Users read these, so the exact text matters;
// a message that loses its path or its fix is a regression even when the policy is still refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIssue, validatePolicy } from '../../src/policy/validate.ts';

// biome-ignore lint/suspicious/noExplicitAny: a document the cases edit into every invalid shape
type Doc = Record<string, any>;

/** A minimal valid Socks4Policy; each case edits a fresh copy. */
function baseDoc(): Doc {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name: 'office', namespace: 'proxies' },
    spec: { rules: [{ name: 'web', action: 'Allow', to: { ports: ['80'] } }] },
  };
}

/** The same as a ClusterSocks4Policy of the given tier (no namespace). */
function clusterDoc(tier?: string): Doc {
  const d = baseDoc();
  d.kind = 'ClusterSocks4Policy';
  delete d.metadata.namespace;
  if (tier !== undefined) d.spec.tier = tier;
  return d;
}

const messages = (doc: unknown): string[] => validatePolicy(doc).map(formatIssue);
const rule0 = (d: Doc): Doc => d.spec.rules[0];

const NAME_RULES =
  "lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit";
const LABEL_RULES =
  "lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit";

interface Case {
  readonly name: string;
  readonly doc: () => unknown;
  readonly expected: readonly string[];
}

/** Edits a fresh base document. */
const edit =
  (f: (d: Doc) => void, base: () => Doc = baseDoc): (() => Doc) =>
  () => {
    const d = base();
    f(d);
    return d;
  };

const documentCases: Case[] = [
  {
    name: 'a scalar is no document',
    doc: () => 'apiVersion',
    expected: ['document must be a mapping, got "apiVersion"'],
  },
  {
    name: 'kind is required',
    doc: edit((d) => {
      delete d.kind;
    }),
    expected: ['kind: is required'],
  },
  { name: 'a list is no document', doc: () => [1], expected: ['document must be a mapping, got a list'] },
  { name: 'an empty value is no document', doc: () => null, expected: ['document must be a mapping, got null'] },
  {
    name: 'an unknown top-level field lists the known ones',
    doc: edit((d) => {
      d.extra = 1;
    }),
    expected: ['extra: unknown field (known fields: apiVersion, kind, metadata, spec, status)'],
  },
  {
    name: 'apiVersion is required',
    doc: edit((d) => {
      delete d.apiVersion;
    }),
    expected: ['apiVersion: is required'],
  },
  {
    name: 'a wrong kind names both kinds',
    doc: edit((d) => {
      d.kind = 'Policy';
    }),
    expected: ['kind: must be "Socks4Policy" or "ClusterSocks4Policy", got "Policy"'],
  },
];

const metadataCases: Case[] = [
  {
    name: 'an unknown metadata field',
    doc: edit((d) => {
      d.metadata.nmae = 'office';
    }),
    expected: [
      'metadata.nmae: unknown field (known fields: name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, finalizers, ownerReferences, managedFields, generateName, selfLink)',
    ],
  },
  {
    name: 'an empty name (YAML `name:`) is missing, not a wrong type',
    doc: edit((d) => {
      d.metadata.name = null;
    }),
    expected: ['metadata.name: is required'],
  },
  {
    name: 'a dotted name with long segments is valid',
    doc: edit((d) => {
      d.metadata.name = 'office.example-team.internal';
    }),
    expected: [],
  },
  {
    name: 'metadata must be a mapping',
    doc: edit((d) => {
      d.metadata = 'x';
    }),
    expected: ['metadata: must be a mapping, got "x"'],
  },
  {
    name: 'metadata.name is required',
    doc: edit((d) => {
      delete d.metadata.name;
    }),
    expected: ['metadata.name: is required'],
  },
  {
    name: 'metadata.name must be a string',
    doc: edit((d) => {
      d.metadata.name = 7;
    }),
    expected: ['metadata.name: must be a string, got 7'],
  },
  {
    name: 'an upper-case name',
    doc: edit((d) => {
      d.metadata.name = 'Office';
    }),
    expected: [`metadata.name: "Office" is not a valid name (${NAME_RULES})`],
  },
  {
    name: 'a name ending in a dot',
    doc: edit((d) => {
      d.metadata.name = 'a.';
    }),
    expected: [`metadata.name: "a." is not a valid name (${NAME_RULES})`],
  },
  {
    name: 'a name with an empty segment',
    doc: edit((d) => {
      d.metadata.name = 'a..b';
    }),
    expected: [`metadata.name: "a..b" is not a valid name (${NAME_RULES})`],
  },
  {
    name: 'a dotted name with dashes is valid',
    doc: edit((d) => {
      d.metadata.name = 'a.b-c.d';
    }),
    expected: [],
  },
  {
    name: 'a segment ending in a dash',
    doc: edit((d) => {
      d.metadata.name = 'a.b-';
    }),
    expected: [`metadata.name: "a.b-" is not a valid name (${NAME_RULES})`],
  },
  {
    name: 'a name of 253 characters is valid',
    doc: edit((d) => {
      d.metadata.name = 'a'.repeat(253);
    }),
    expected: [],
  },
  {
    name: 'a name of 254 characters is cut short in the message',
    doc: edit((d) => {
      d.metadata.name = 'a'.repeat(254);
    }),
    expected: [`metadata.name: "${'a'.repeat(61)}..." is not a valid name (${NAME_RULES})`],
  },
  {
    name: 'a cluster policy has no namespace',
    doc: edit((d) => {
      d.metadata.namespace = 'proxies';
    }, clusterDoc),
    expected: [
      'metadata.namespace: a ClusterSocks4Policy is cluster-scoped and has no namespace; remove metadata.namespace',
    ],
  },
  {
    name: 'an upper-case namespace',
    doc: edit((d) => {
      d.metadata.namespace = 'Prox';
    }),
    expected: [`metadata.namespace: "Prox" is not a valid namespace (${LABEL_RULES})`],
  },
  {
    name: 'a namespace of 63 characters is valid',
    doc: edit((d) => {
      d.metadata.namespace = 'a'.repeat(63);
    }),
    expected: [],
  },
  {
    name: 'a namespace of 64 characters',
    doc: edit((d) => {
      d.metadata.namespace = 'a'.repeat(64);
    }),
    expected: [`metadata.namespace: "${'a'.repeat(64)}" is not a valid namespace (${LABEL_RULES})`],
  },
  {
    name: 'a namespace must be a string',
    doc: edit((d) => {
      d.metadata.namespace = 5;
    }),
    expected: ['metadata.namespace: must be a string, got 5'],
  },
  {
    name: 'label values are strings; a key with dots and slashes is quoted in the path',
    doc: edit((d) => {
      d.metadata.labels = { team: 'a', 'app.kubernetes.io/name': 3 };
      d.metadata.annotations = 'x';
    }),
    expected: [
      'metadata.labels["app.kubernetes.io/name"]: must be a string, got 3',
      'metadata.annotations: must be a mapping, got "x"',
    ],
  },
  {
    name: 'annotation values are strings',
    doc: edit((d) => {
      d.metadata.annotations = { note: null };
    }),
    expected: ['metadata.annotations.note: must be a string, got null'],
  },
];

const specCases: Case[] = [
  {
    name: 'spec must be a mapping',
    doc: edit((d) => {
      d.spec = [];
    }),
    expected: ['spec: must be a mapping, got a list'],
  },
  {
    name: 'an unknown spec field',
    doc: edit((d) => {
      d.spec.extra = 1;
    }),
    expected: ['spec.extra: unknown field (known fields: priority, tier, enforcement, rules)'],
  },
  {
    name: 'priority and enforcement out of their ranges',
    doc: edit((d) => {
      d.spec.priority = -1;
      d.spec.enforcement = 'Strict';
    }),
    expected: [
      'spec.priority: must be an integer from 0 to 1000000, got -1',
      'spec.enforcement: must be one of Enforce, Report, got "Strict"',
    ],
  },
  {
    name: 'a namespaced policy has no tier',
    doc: edit((d) => {
      d.spec.tier = 'Admin';
    }),
    expected: ['spec.tier: only a ClusterSocks4Policy has a tier; a Socks4Policy always governs its own namespace'],
  },
  {
    name: 'an unknown cluster tier',
    doc: () => clusterDoc('Top'),
    expected: ['spec.tier: must be one of Admin, Baseline, got "Top"'],
  },
  {
    name: 'Pass in an Admin cluster policy is valid',
    doc: edit(
      (d) => {
        rule0(d).action = 'Pass';
      },
      () => clusterDoc('Admin'),
    ),
    expected: [],
  },
  {
    name: 'Pass in a cluster policy without a tier is valid (Admin is the default)',
    doc: edit(
      (d) => {
        rule0(d).action = 'Pass';
      },
      () => clusterDoc(),
    ),
    expected: [],
  },
  {
    name: 'Pass in a Baseline cluster policy says who takes it',
    doc: edit(
      (d) => {
        rule0(d).action = 'Pass';
      },
      () => clusterDoc('Baseline'),
    ),
    expected: [
      "spec.rules[0].action: Pass hands the decision to the client's namespace: only a ClusterSocks4Policy of tier Admin takes it; use Allow or Deny",
    ],
  },
  {
    name: 'Pass in a namespaced policy',
    doc: edit((d) => {
      rule0(d).action = 'Pass';
    }),
    expected: [
      "spec.rules[0].action: Pass hands the decision to the client's namespace: only a ClusterSocks4Policy of tier Admin takes it; use Allow or Deny",
    ],
  },
  {
    name: 'the highest priority is valid',
    doc: edit((d) => {
      d.spec.priority = 1000000;
      d.spec.enforcement = 'Report';
    }),
    expected: [],
  },
  {
    name: 'a priority above the highest',
    doc: edit((d) => {
      d.spec.priority = 1000001;
    }),
    expected: ['spec.priority: must be an integer from 0 to 1000000, got 1000001'],
  },
  {
    // 1000 exact USERIDs of 242 characters cost (8 + 242) × 1000 = 250 000 (match-cost.ts): the
    // bound itself is allowed, one character more is not.
    name: 'glob cost at the per-policy bound is valid',
    doc: edit((d) => {
      rule0(d).from = { userids: Array.from({ length: 1000 }, () => 'u'.repeat(242)) };
    }),
    expected: [],
  },
  {
    name: 'glob cost one over the per-policy bound',
    doc: edit((d) => {
      rule0(d).from = { userids: [...Array.from({ length: 999 }, () => 'u'.repeat(242)), 'u'.repeat(243)] };
    }),
    expected: [
      "spec.rules: its globs may cost 250001 comparisons a decision, at most 250000 are allowed (use exact names, prefix* or *suffix, fewer patterns with a middle '*' or '?', or split the rules across policies)",
    ],
  },
  {
    name: 'rules is required',
    doc: edit((d) => {
      delete d.spec.rules;
    }),
    expected: ['spec.rules: is required'],
  },
  {
    name: 'rules must be a list',
    doc: edit((d) => {
      d.spec.rules = {};
    }),
    expected: ['spec.rules: must be a list, got a mapping'],
  },
  {
    name: '1000 rules are allowed',
    doc: edit((d) => {
      d.spec.rules = Array.from({ length: 1000 }, (_, i) => ({ name: `r${i}`, action: 'Deny' }));
    }),
    expected: [],
  },
  {
    name: '1001 rules are too many',
    doc: edit((d) => {
      d.spec.rules = Array.from({ length: 1001 }, (_, i) => ({ name: `r${i}`, action: 'Deny' }));
    }),
    expected: ['spec.rules: has 1001 rules, at most 1000 are allowed'],
  },
  {
    // '*a?b*' costs 8 + 3 × 256 = 776 (match-cost.ts): 200 of them in userids and 200 in hosts
    // are each under the 250 000 bound, together over it.
    name: 'glob cost adds userids and hosts of every rule',
    doc: edit((d) => {
      rule0(d).from = { userids: Array.from({ length: 200 }, () => '*a?b*') };
      d.spec.rules.push({ name: 'hosts', action: 'Allow', to: { hosts: Array.from({ length: 200 }, () => '*a?b*') } });
    }),
    expected: [
      "spec.rules: its globs may cost 310400 comparisons a decision, at most 250000 are allowed (use exact names, prefix* or *suffix, fewer patterns with a middle '*' or '?', or split the rules across policies)",
    ],
  },
  {
    name: 'glob cost of one list alone under the bound',
    doc: edit((d) => {
      rule0(d).to = { hosts: Array.from({ length: 300 }, () => '*a?b*') };
    }),
    expected: [],
  },
];

const ruleCases: Case[] = [
  {
    name: 'a rule must be a mapping',
    doc: edit((d) => {
      d.spec.rules = [null, 'x'];
    }),
    expected: ['spec.rules[0]: must be a mapping, got null', 'spec.rules[1]: must be a mapping, got "x"'],
  },
  {
    name: 'name and action are required',
    doc: edit((d) => {
      d.spec.rules = [{}];
    }),
    expected: ['spec.rules[0].name: is required', 'spec.rules[0].action: is required'],
  },
  {
    name: 'an upper-case rule name',
    doc: edit((d) => {
      rule0(d).name = 'Web';
    }),
    expected: [`spec.rules[0].name: "Web" is not a valid rule name (${LABEL_RULES})`],
  },
  {
    name: 'a rule name of 63 characters is valid',
    doc: edit((d) => {
      rule0(d).name = 'a'.repeat(63);
    }),
    expected: [],
  },
  {
    name: 'a rule name of 64 characters',
    doc: edit((d) => {
      rule0(d).name = 'a'.repeat(64);
    }),
    expected: [`spec.rules[0].name: "${'a'.repeat(64)}" is not a valid rule name (${LABEL_RULES})`],
  },
  {
    name: 'a rule name must be a string',
    doc: edit((d) => {
      rule0(d).name = 1;
    }),
    expected: ['spec.rules[0].name: must be a string, got 1'],
  },
  {
    name: 'ident checks only on Allow rules',
    doc: edit((d) => {
      rule0(d).action = 'Deny';
      rule0(d).ident = 'Required';
    }),
    expected: ['spec.rules[0].ident: only Allow rules take ident checks, got "Required" on a Deny rule'],
  },
  {
    name: 'ident Off on a Deny rule is valid',
    doc: edit((d) => {
      rule0(d).action = 'Deny';
      rule0(d).ident = 'Off';
    }),
    expected: [],
  },
  {
    name: 'limits only on Allow rules',
    doc: edit((d) => {
      rule0(d).action = 'Deny';
      rule0(d).limits = {};
    }),
    expected: ['spec.rules[0].limits: only Allow rules take limits'],
  },
  {
    name: 'a repeated and an unknown command',
    doc: edit((d) => {
      rule0(d).commands = ['Connect', 'Connect', 'Udp'];
    }),
    expected: [
      'spec.rules[0].commands[1]: duplicate "Connect"',
      'spec.rules[0].commands[2]: must be one of Connect, Bind, got "Udp"',
    ],
  },
  {
    name: 'commands must be a list',
    doc: edit((d) => {
      rule0(d).commands = 'Connect';
    }),
    expected: ['spec.rules[0].commands: must be a list, got "Connect"'],
  },
];

const fromToCases: Case[] = [
  {
    name: 'an Allow rule takes ident checks',
    doc: edit((d) => {
      rule0(d).ident = 'Required';
    }),
    expected: [],
  },
  {
    name: 'an unknown action with ident and limits gets only the action message',
    doc: edit((d) => {
      rule0(d).action = 'Reject';
      rule0(d).ident = 'Required';
      rule0(d).limits = { bandwidth: { bytesPerSecond: 1, key: 'Session' } };
    }),
    expected: ['spec.rules[0].action: must be one of Allow, Deny, got "Reject"'],
  },
  {
    name: 'an unknown ident mode on a Deny rule gets only the ident message',
    doc: edit((d) => {
      rule0(d).action = 'Deny';
      rule0(d).ident = 'Maybe';
    }),
    expected: ['spec.rules[0].ident: must be one of Off, Optional, Required, got "Maybe"'],
  },
  {
    name: 'YAML 1.1 booleans (unquoted Off) are told to be quoted',
    doc: edit((d) => {
      rule0(d).ident = false;
    }),
    expected: ['spec.rules[0].ident: must be one of Off, Optional, Required, got false; quote the value, e.g. "Off"'],
  },
  {
    name: 'two unknown commands are not duplicates',
    doc: edit((d) => {
      rule0(d).commands = ['Udp', 'Udp'];
    }),
    expected: [
      'spec.rules[0].commands[0]: must be one of Connect, Bind, got "Udp"',
      'spec.rules[0].commands[1]: must be one of Connect, Bind, got "Udp"',
    ],
  },
  {
    name: 'an empty list says how to match anything instead',
    doc: edit((d) => {
      rule0(d).commands = [];
      rule0(d).from = { cidrs: [], userids: [] };
      rule0(d).to = { cidrs: [], hosts: [], ports: [] };
    }),
    expected: [
      'spec.rules[0].commands: must not be empty (omit it to match Connect and Bind)',
      'spec.rules[0].from.cidrs: must not be empty (omit it to match any address)',
      'spec.rules[0].from.userids: must not be empty (omit it to match any USERID)',
      'spec.rules[0].to.cidrs: must not be empty (omit it to match any address)',
      'spec.rules[0].to.hosts: must not be empty (omit it to match any destination)',
      'spec.rules[0].to.ports: must not be empty (omit it to match any port)',
    ],
  },
  {
    name: 'a list of 1001 USERIDs is too long',
    doc: edit((d) => {
      rule0(d).from = { userids: Array.from({ length: 1001 }, (_, i) => `u${i}`) };
    }),
    expected: ['spec.rules[0].from.userids: has 1001 entries, at most 1000 are allowed'],
  },

  {
    name: 'from must be a mapping',
    doc: edit((d) => {
      rule0(d).from = 'x';
    }),
    expected: ['spec.rules[0].from: must be a mapping, got "x"'],
  },
  {
    name: 'an unknown from field',
    doc: edit((d) => {
      rule0(d).from = { ips: [] };
    }),
    expected: ['spec.rules[0].from.ips: unknown field (known fields: cidrs, userids)'],
  },
  {
    name: 'USERIDs: NUL, too long, not a string',
    doc: edit((d) => {
      rule0(d).from = { userids: ['a\0b', 'x'.repeat(300), 5, 'é'.repeat(128)] };
    }),
    expected: [
      'spec.rules[0].from.userids[0]: must not contain NUL',
      'spec.rules[0].from.userids[1]: must be at most 255 bytes, got 300',
      'spec.rules[0].from.userids[2]: must be a string, got 5',
      'spec.rules[0].from.userids[3]: must be at most 255 bytes, got 256',
    ],
  },
  {
    name: 'userids must be a list',
    doc: edit((d) => {
      rule0(d).from = { userids: 'alice' };
    }),
    expected: ['spec.rules[0].from.userids: must be a list, got "alice"'],
  },
  {
    name: 'to must be a mapping',
    doc: edit((d) => {
      rule0(d).to = 3;
    }),
    expected: ['spec.rules[0].to: must be a mapping, got 3'],
  },
  {
    name: 'an unknown to field',
    doc: edit((d) => {
      rule0(d).to = { port: ['80'] };
    }),
    expected: ['spec.rules[0].to.port: unknown field (known fields: cidrs, hosts, ports)'],
  },
  {
    name: 'hosts: a space, too long, not a string',
    doc: edit((d) => {
      rule0(d).to = { hosts: ['a b', 'x'.repeat(300), 7, 'ok.example'] };
    }),
    expected: [
      `spec.rules[0].to.hosts[0]: "a b" is not a host name glob: label "a b" is not a host name label, even after IDNA (UTS-46) conversion (use letters, digits, '-', '.', '_', '*', '?' or an internationalised name)`,
      'spec.rules[0].to.hosts[1]: must be at most 255 characters, got 300',
      'spec.rules[0].to.hosts[2]: must be a string, got 7',
    ],
  },
  {
    name: 'a host glob of 255 characters is valid',
    doc: edit((d) => {
      rule0(d).to = { hosts: [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`] };
    }),
    expected: [],
  },
  {
    name: 'hosts must be a list',
    doc: edit((d) => {
      rule0(d).to = { hosts: 'a' };
    }),
    expected: ['spec.rules[0].to.hosts: must be a list, got "a"'],
  },
  {
    name: 'ports: a number says how to quote it',
    doc: edit((d) => {
      rule0(d).to = { ports: [80, 'x', null] };
    }),
    expected: [
      'spec.rules[0].to.ports[0]: must be a string, got 80; quote it: "80"',
      'spec.rules[0].to.ports[1]: "x" is not a port or port range (like "443" or "8000-8999")',
      'spec.rules[0].to.ports[2]: must be a string, got null',
    ],
  },
  {
    name: 'ports must be a list',
    doc: edit((d) => {
      rule0(d).to = { ports: '80' };
    }),
    expected: ['spec.rules[0].to.ports: must be a list, got "80"'],
  },
  {
    name: 'CIDRs in from and to',
    doc: edit((d) => {
      rule0(d).to = { cidrs: ['10.0.0.0/33', 4, '10.0.0.0/8'] };
      rule0(d).from = { cidrs: '10.0.0.0/8' };
    }),
    expected: [
      'spec.rules[0].from.cidrs: must be a list, got "10.0.0.0/8"',
      'spec.rules[0].to.cidrs[0]: "10.0.0.0/33" is not an IPv4 CIDR',
      'spec.rules[0].to.cidrs[1]: must be a string, got 4',
    ],
  },
];

const limitsCases: Case[] = [
  {
    name: 'limits must be a mapping',
    doc: edit((d) => {
      rule0(d).limits = 1;
    }),
    expected: ['spec.rules[0].limits: must be a mapping, got 1'],
  },
  {
    name: 'unknown fields at every level of limits',
    doc: edit((d) => {
      rule0(d).limits = {
        rate: 1,
        connectionRate: { perSecond: 1, burst: 1, key: 'SourceIP', x: 1 },
        concurrentSessions: { max: 1, key: 'UserID', y: 1 },
        bandwidth: { bytesPerSecond: 1, key: 'Session', z: 1 },
      };
    }),
    expected: [
      'spec.rules[0].limits.rate: unknown field (known fields: connectionRate, concurrentSessions, bandwidth)',
      'spec.rules[0].limits.connectionRate.x: unknown field (known fields: perSecond, burst, key)',
      'spec.rules[0].limits.concurrentSessions.y: unknown field (known fields: max, key)',
      'spec.rules[0].limits.bandwidth.z: unknown field (known fields: bytesPerSecond, key)',
    ],
  },
  {
    name: 'every limit field is required',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: {}, concurrentSessions: {}, bandwidth: {} };
    }),
    expected: [
      'spec.rules[0].limits.connectionRate.perSecond: is required',
      'spec.rules[0].limits.connectionRate.burst: is required',
      'spec.rules[0].limits.connectionRate.key: is required',
      'spec.rules[0].limits.concurrentSessions.max: is required',
      'spec.rules[0].limits.concurrentSessions.key: is required',
      'spec.rules[0].limits.bandwidth.bytesPerSecond: is required',
      'spec.rules[0].limits.bandwidth.key: is required',
    ],
  },
  {
    name: 'each limit must be a mapping',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: 1, concurrentSessions: 'x', bandwidth: [] };
    }),
    expected: [
      'spec.rules[0].limits.connectionRate: must be a mapping, got 1',
      'spec.rules[0].limits.concurrentSessions: must be a mapping, got "x"',
      'spec.rules[0].limits.bandwidth: must be a mapping, got a list',
    ],
  },
  {
    name: 'wrong types and keys in every limit (only bandwidth is kept per Session)',
    doc: edit((d) => {
      rule0(d).limits = {
        connectionRate: { perSecond: '5', burst: 0.5, key: 'Ip' },
        concurrentSessions: { max: 0, key: 'Session' },
        bandwidth: { bytesPerSecond: -1, key: 'Ip' },
      };
    }),
    expected: [
      'spec.rules[0].limits.connectionRate.perSecond: must be a number greater than 0, got "5"',
      'spec.rules[0].limits.connectionRate.burst: must be an integer of at least 1, got 0.5',
      'spec.rules[0].limits.connectionRate.key: must be one of SourceIP, UserID, Rule, got "Ip"',
      'spec.rules[0].limits.concurrentSessions.max: must be an integer of at least 1, got 0',
      'spec.rules[0].limits.concurrentSessions.key: must be one of SourceIP, UserID, Rule, got "Session"',
      'spec.rules[0].limits.bandwidth.bytesPerSecond: must be an integer of at least 1, got -1',
      'spec.rules[0].limits.bandwidth.key: must be one of Session, SourceIP, UserID, Rule, got "Ip"',
    ],
  },
  {
    name: 'perSecond must be finite',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: Number.POSITIVE_INFINITY, burst: 1, key: 'SourceIP' } };
    }),
    expected: ['spec.rules[0].limits.connectionRate.perSecond: must be a number greater than 0, got Infinity'],
  },
  {
    name: 'perSecond zero',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: 0, burst: 1, key: 'SourceIP' } };
    }),
    expected: ['spec.rules[0].limits.connectionRate.perSecond: must be a number greater than 0, got 0'],
  },
  {
    name: 'perSecond and burst past the safe integers',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: 2 ** 53, burst: 2 ** 53, key: 'SourceIP' } };
    }),
    expected: [
      'spec.rules[0].limits.connectionRate.perSecond: must be a number greater than 0, got 9007199254740992',
      'spec.rules[0].limits.connectionRate.burst: must be an integer of at least 1, got 9007199254740992',
    ],
  },
  {
    name: 'perSecond and burst at the largest safe integer are valid',
    doc: edit((d) => {
      const max = Number.MAX_SAFE_INTEGER;
      rule0(d).limits = { connectionRate: { perSecond: max, burst: max, key: 'SourceIP' } };
    }),
    expected: [],
  },
  {
    name: 'a fractional perSecond is valid',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: 0.5, burst: 1, key: 'Rule' } };
    }),
    expected: [],
  },
  {
    name: 'burst below perSecond',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: 10, burst: 9, key: 'SourceIP' } };
    }),
    expected: ['spec.rules[0].limits.connectionRate.burst: must be at least perSecond (10), got 9'],
  },
  {
    name: 'burst equal to perSecond is valid',
    doc: edit((d) => {
      rule0(d).limits = { connectionRate: { perSecond: 10, burst: 10, key: 'SourceIP' } };
    }),
    expected: [],
  },
];

describe('policy validate messages: the path and the one-line fix', () => {
  for (const [group, cases] of [
    ['document', documentCases],
    ['metadata', metadataCases],
    ['spec', specCases],
    ['rules', ruleCases],
    ['from and to', fromToCases],
    ['limits', limitsCases],
  ] as const) {
    describe(group, () => {
      for (const c of cases) {
        it(c.name, () => {
          assert.deepEqual(messages(c.doc()), c.expected);
        });
      }
    });
  }
});
