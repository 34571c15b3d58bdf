import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import { formatIssue, validatePolicy } from '../../src/policy/validate.ts';

/** A valid document; each case edits a deep copy. */
// biome-ignore lint/suspicious/noExplicitAny: a document the cases edit into every invalid shape
function baseDoc(): Record<string, any> {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name: 'office', namespace: 'proxies' },
    spec: {
      priority: 100,
      rules: [
        { name: 'deny-ssh', action: 'Deny', to: { ports: ['22'] } },
        {
          name: 'office-web',
          action: 'Allow',
          commands: ['Connect'],
          from: { cidrs: ['10.0.0.0/8'], userids: ['alice', 'svc-*'] },
          to: { cidrs: ['0.0.0.0/0'], hosts: ['*.example.com'], ports: ['443', '8000-8999'] },
          ident: 'Off',
          limits: {
            connectionRate: { perSecond: 10, burst: 20, key: 'SourceIP' },
            concurrentSessions: { max: 100, key: 'UserID' },
            bandwidth: { bytesPerSecond: 1048576, key: 'Session' },
          },
        },
        { name: 'web', action: 'Allow', to: { ports: ['80'] } },
      ],
    },
  };
}

const messages = (doc: unknown): string[] => validatePolicy(doc).map(formatIssue);

describe('validatePolicy', () => {
  it('accepts the full schema', () => {
    assert.deepEqual(messages(baseDoc()), []);
  });

  // biome-ignore lint/suspicious/noExplicitAny: as baseDoc
  const cases: { name: string; edit: (d: Record<string, any>) => void; expected: string[] }[] = [
    {
      name: 'port out of range',
      edit: (d) => {
        d.spec.rules[2].to.ports = ['70000'];
      },
      expected: ['spec.rules[2].to.ports[0]: "70000" is not a port'],
    },
    {
      name: 'port zero',
      edit: (d) => {
        d.spec.rules[2].to.ports = ['80', '0'];
      },
      expected: ['spec.rules[2].to.ports[1]: "0" is not a port'],
    },
    {
      name: 'reversed range',
      edit: (d) => {
        d.spec.rules[1].to.ports[1] = '9000-8000';
      },
      expected: ['spec.rules[1].to.ports[1]: "9000-8000" is not a port range: 9000 is greater than 8000'],
    },
    {
      name: 'range bound out of range',
      edit: (d) => {
        d.spec.rules[2].to.ports = ['0-80'];
      },
      expected: ['spec.rules[2].to.ports[0]: "0-80" is not a port range: ports are 1-65535'],
    },
    {
      name: 'port garbage',
      edit: (d) => {
        d.spec.rules[2].to.ports = ['http'];
      },
      expected: ['spec.rules[2].to.ports[0]: "http" is not a port or port range (like "443" or "8000-8999")'],
    },
    {
      name: 'unquoted port',
      edit: (d) => {
        d.spec.rules[2].to.ports = [443];
      },
      expected: ['spec.rules[2].to.ports[0]: must be a string, got 443; quote it: "443"'],
    },
    {
      name: 'prefix too long',
      edit: (d) => {
        d.spec.rules[1].from.cidrs = ['10.0.0.0/33'];
      },
      expected: ['spec.rules[1].from.cidrs[0]: "10.0.0.0/33" is not an IPv4 CIDR'],
    },
    {
      name: 'bad octet',
      edit: (d) => {
        d.spec.rules[1].to.cidrs = ['0.0.0.0/0', '300.1.1.1/32'];
      },
      expected: ['spec.rules[1].to.cidrs[1]: "300.1.1.1/32" is not an IPv4 CIDR'],
    },
    {
      name: 'plain IPv6 block',
      edit: (d) => {
        d.spec.rules[1].to.cidrs = ['2001:db8::/32'];
      },
      expected: ['spec.rules[1].to.cidrs[0]: "2001:db8::/32" is not an IPv4 CIDR'],
    },
    {
      name: 'mapped prefix below 96',
      edit: (d) => {
        d.spec.rules[1].to.cidrs = ['::ffff:10.0.0.0/64'];
      },
      expected: ['spec.rules[1].to.cidrs[0]: "::ffff:10.0.0.0/64" is not an IPv4 CIDR'],
    },
    {
      name: 'unknown rule field',
      edit: (d) => {
        d.spec.rules[0].form = {};
      },
      expected: ['spec.rules[0].form: unknown field (known fields: name, action, commands, from, to, ident, limits)'],
    },
    {
      name: 'unknown spec field',
      edit: (d) => {
        d.spec.defaultAction = 'Allow';
      },
      expected: ['spec.defaultAction: unknown field (known fields: priority, tier, enforcement, rules)'],
    },
    {
      name: 'bad enforcement',
      edit: (d) => {
        d.spec.enforcement = 'DryRun';
      },
      expected: ['spec.enforcement: must be one of Enforce, Report, got "DryRun"'],
    },
    {
      name: 'unknown limits field',
      edit: (d) => {
        d.spec.rules[1].limits.connectionRate.per = 1;
      },
      expected: ['spec.rules[1].limits.connectionRate.per: unknown field (known fields: perSecond, burst, key)'],
    },
    {
      name: 'duplicate rule names',
      edit: (d) => {
        d.spec.rules[2].name = 'deny-ssh';
      },
      expected: ['spec.rules[2].name: duplicate rule name "deny-ssh" (also spec.rules[0])'],
    },
    {
      name: 'bad rule name',
      edit: (d) => {
        d.spec.rules[0].name = 'Deny_SSH';
      },
      expected: [
        'spec.rules[0].name: "Deny_SSH" is not a valid rule name (lowercase letters, digits and \'-\', at most 63 characters, starting and ending with a letter or digit)',
      ],
    },
    {
      name: 'missing rule name',
      edit: (d) => {
        delete d.spec.rules[0].name;
      },
      expected: ['spec.rules[0].name: is required'],
    },
    {
      name: 'bad action',
      edit: (d) => {
        d.spec.rules[0].action = 'deny';
      },
      expected: ['spec.rules[0].action: must be one of Allow, Deny, got "deny"'],
    },
    {
      name: 'bad command',
      edit: (d) => {
        d.spec.rules[1].commands = ['Connect', 'Udp'];
      },
      expected: ['spec.rules[1].commands[1]: must be one of Connect, Bind, got "Udp"'],
    },
    {
      name: 'duplicate command',
      edit: (d) => {
        d.spec.rules[1].commands = ['Connect', 'Connect'];
      },
      expected: ['spec.rules[1].commands[1]: duplicate "Connect"'],
    },
    {
      name: 'empty list',
      edit: (d) => {
        d.spec.rules[1].commands = [];
      },
      expected: ['spec.rules[1].commands: must not be empty (omit it to match Connect and Bind)'],
    },
    {
      name: 'bad ident',
      edit: (d) => {
        d.spec.rules[1].ident = 'Sometimes';
      },
      expected: ['spec.rules[1].ident: must be one of Off, Optional, Required, got "Sometimes"'],
    },
    {
      name: 'YAML 1.1 boolean ident',
      edit: (d) => {
        d.spec.rules[1].ident = false;
      },
      expected: ['spec.rules[1].ident: must be one of Off, Optional, Required, got false; quote the value, e.g. "Off"'],
    },
    {
      name: 'bad limit key',
      edit: (d) => {
        d.spec.rules[1].limits.connectionRate.key = 'Session';
      },
      expected: ['spec.rules[1].limits.connectionRate.key: must be one of SourceIP, UserID, Rule, got "Session"'],
    },
    {
      name: 'bad bandwidth key',
      edit: (d) => {
        d.spec.rules[1].limits.bandwidth.key = 'Host';
      },
      expected: ['spec.rules[1].limits.bandwidth.key: must be one of Session, SourceIP, UserID, Rule, got "Host"'],
    },
    {
      name: 'burst below perSecond',
      edit: (d) => {
        d.spec.rules[1].limits.connectionRate.burst = 5;
      },
      expected: ['spec.rules[1].limits.connectionRate.burst: must be at least perSecond (10), got 5'],
    },
    {
      name: 'perSecond zero',
      edit: (d) => {
        d.spec.rules[1].limits.connectionRate.perSecond = 0;
      },
      expected: ['spec.rules[1].limits.connectionRate.perSecond: must be a number greater than 0, got 0'],
    },
    {
      name: 'fractional burst',
      edit: (d) => {
        d.spec.rules[1].limits.connectionRate.burst = 20.5;
      },
      expected: ['spec.rules[1].limits.connectionRate.burst: must be an integer of at least 1, got 20.5'],
    },
    {
      name: 'max zero',
      edit: (d) => {
        d.spec.rules[1].limits.concurrentSessions.max = 0;
      },
      expected: ['spec.rules[1].limits.concurrentSessions.max: must be an integer of at least 1, got 0'],
    },
    {
      name: 'missing limit key',
      edit: (d) => {
        delete d.spec.rules[1].limits.bandwidth.key;
      },
      expected: ['spec.rules[1].limits.bandwidth.key: is required'],
    },
    {
      name: 'limits on a deny rule',
      edit: (d) => {
        d.spec.rules[0].limits = { concurrentSessions: { max: 1, key: 'Rule' } };
      },
      expected: ['spec.rules[0].limits: only Allow rules take limits'],
    },
    {
      name: 'ident on a deny rule',
      edit: (d) => {
        d.spec.rules[0].ident = 'Required';
      },
      expected: ['spec.rules[0].ident: only Allow rules take ident checks, got "Required" on a Deny rule'],
    },
    {
      name: 'wrong apiVersion',
      edit: (d) => {
        d.apiVersion = 'socks4-fleet.io/v1';
      },
      expected: ['apiVersion: must be "socks4-fleet.io/v1alpha1", got "socks4-fleet.io/v1"'],
    },
    {
      name: 'wrong kind',
      edit: (d) => {
        d.kind = 'NetworkPolicy';
      },
      expected: ['kind: must be "Socks4Policy" or "ClusterSocks4Policy", got "NetworkPolicy"'],
    },
    {
      name: 'missing rules',
      edit: (d) => {
        delete d.spec.rules;
      },
      expected: ['spec.rules: is required'],
    },
    {
      name: 'rules not a list',
      edit: (d) => {
        d.spec.rules = { name: 'x' };
      },
      expected: ['spec.rules: must be a list, got a mapping'],
    },
    {
      name: 'missing name',
      edit: (d) => {
        delete d.metadata.name;
      },
      expected: ['metadata.name: is required'],
    },
    {
      name: 'bad policy name',
      edit: (d) => {
        d.metadata.name = 'Office';
      },
      expected: [
        "metadata.name: \"Office\" is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)",
      ],
    },
    {
      name: 'priority out of range',
      edit: (d) => {
        d.spec.priority = 1_000_001;
      },
      expected: ['spec.priority: must be an integer from 0 to 1000000, got 1000001'],
    },
    {
      name: 'priority not a number',
      edit: (d) => {
        d.spec.priority = 'high';
      },
      expected: ['spec.priority: must be an integer from 0 to 1000000, got "high"'],
    },
    {
      name: 'host glob with a space',
      edit: (d) => {
        d.spec.rules[1].to.hosts = ['exa mple.com'];
      },
      expected: [
        "spec.rules[1].to.hosts[0]: \"exa mple.com\" is not a host name glob: label \"exa mple\" is not a host name label, even after IDNA (UTS-46) conversion (use letters, digits, '-', '.', '_', '*', '?' or an internationalised name)",
      ],
    },
    {
      name: 'userid too long',
      edit: (d) => {
        d.spec.rules[1].from.userids = ['u'.repeat(256)];
      },
      expected: ['spec.rules[1].from.userids[0]: must be at most 255 bytes, got 256'],
    },
    {
      name: 'from is not a mapping',
      edit: (d) => {
        d.spec.rules[1].from = ['10.0.0.0/8'];
      },
      expected: ['spec.rules[1].from: must be a mapping, got a list'],
    },
    {
      name: 'too many entries',
      edit: (d) => {
        d.spec.rules[2].to.hosts = Array.from({ length: 1001 }, () => 'a.example');
      },
      expected: ['spec.rules[2].to.hosts: has 1001 entries, at most 1000 are allowed'],
    },
    {
      name: 'several problems at once',
      edit: (d) => {
        d.spec.rules[0].action = 'Block';
        d.spec.rules[2].to.ports = ['80', '65536'];
      },
      expected: [
        'spec.rules[0].action: must be one of Allow, Deny, got "Block"',
        'spec.rules[2].to.ports[1]: "65536" is not a port',
      ],
    },
  ];
  for (const c of cases) {
    it(`reports ${c.name}`, () => {
      const doc = baseDoc();
      c.edit(doc);
      assert.deepEqual(messages(doc), c.expected);
    });
  }

  it('accepts boundary values', () => {
    const doc = baseDoc();
    doc.spec.priority = 0;
    doc.spec.rules[2].to = {
      ports: ['1', '65535', '1-65535'],
      cidrs: ['10.1.2.3/8', '::ffff:127.0.0.1/128', '::ffff:10.0.0.0/104', '192.168.1.1'],
    };
    doc.spec.rules[1].from.userids = ['', 'u'.repeat(255)];
    doc.spec.rules[1].limits.connectionRate = { perSecond: 0.5, burst: 1, key: 'Rule' };
    assert.deepEqual(messages(doc), []);
  });

  it('refuses a document that is not a mapping', () => {
    assert.deepEqual(messages(['a']), ['document must be a mapping, got a list']);
  });

  it('accepts objects as the Kubernetes API server returns them', () => {
    const doc = baseDoc();
    Object.assign(doc.metadata, {
      uid: 'abc',
      resourceVersion: '12',
      generation: 3,
      labels: { team: 'net' },
      managedFields: [],
    });
    doc.status = { conditions: [] };
    assert.deepEqual(messages(doc), []);
  });
});

describe('loadPolicyText', () => {
  const doc = (name: string, extra = ''): string =>
    `apiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nmetadata:\n  name: ${name}\n${extra}spec:\n  rules:\n    - name: all\n      action: Allow\n`;

  it('reads every document, ignores empty ones and fills defaults', () => {
    const { policies, issues } = loadPolicyText(
      `# leading comment\n---\n${doc('a')}---\n# nothing here\n---\n${doc('b', '  namespace: team\n')}`,
      'p.yaml',
    );
    assert.deepEqual(issues, []);
    assert.deepEqual(
      policies.map((p) => [p.metadata.namespace, p.metadata.name, p.spec.priority]),
      [
        ['default', 'a', 1000],
        ['team', 'b', 1000],
      ],
    );
  });

  it('prefixes issues with the policy they belong to', () => {
    const text = `${doc('a')}---\n${doc('b').replace('action: Allow', 'action: allow')}`;
    const { policies, issues } = loadPolicyText(text, 'p.yaml');
    assert.deepEqual(issues.map(formatIssue), [
      'default/b: spec.rules[0].action: must be one of Allow, Deny, got "allow"',
    ]);
    assert.deepEqual(
      policies.map((p) => p.metadata.name),
      ['a'],
    );
  });

  it('reports duplicate namespace/name across documents', () => {
    const { issues } = loadPolicyText(`${doc('a')}---\n${doc('a', '  namespace: default\n')}`, 'p.yaml');
    assert.deepEqual(issues.map(formatIssue), [
      'default/a: metadata.name: duplicate policy default/a (first defined in document 1)',
    ]);
  });

  it('names unnamed documents and YAML syntax errors by position', () => {
    const { issues } = loadPolicyText(`${doc('a')}---\nkind: Socks4Policy\n---\nspec: [1,\n`, 'p.yaml');
    const lines = issues.map(formatIssue);
    assert.equal(lines[0], 'p.yaml document 2: apiVersion: is required');
    assert.ok(lines.includes('p.yaml document 2: metadata: is required'));
    assert.match(lines.at(-1) ?? '', /^p\.yaml document 3: .*line \d+, column \d+/);
  });

  it('refuses duplicate keys instead of keeping the last one', () => {
    const { issues } = loadPolicyText(doc('a').replace('action: Allow', 'action: Allow\n      action: Deny'), 'p.yaml');
    assert.match(formatIssue(issues[0] ?? { path: '', message: '' }), /^p\.yaml document 1: Map keys must be unique/);
  });

  it('refuses alias bombs', () => {
    const bomb =
      'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    const { policies, issues } = loadPolicyText(bomb, 'bomb.yaml');
    assert.equal(policies.length, 0);
    assert.match(formatIssue(issues[0] ?? { path: '', message: '' }), /^bomb\.yaml document 1: .*alias/i);
  });

  it('loads and compiles the shipped example', () => {
    const text = readFileSync(new URL('../../examples/policy.yaml', import.meta.url), 'utf8');
    const { policies, issues } = loadPolicyText(text, 'examples/policy.yaml');
    assert.deepEqual(issues, []);
    const set = compilePolicies(policies);
    assert.equal(set.policyCount, 2);
    assert.deepEqual(
      set.rules.map((r) => r.ref.id),
      [
        'default/local-dev/deny-cloud-metadata',
        'default/local-dev/local-to-local',
        'default/local-dev/example-web',
        'default/local-dev/local-bind',
        'default/office-egress/no-smtp',
        'default/office-egress/staff-web',
      ],
    );
  });
});

it('a rule may list at most 256 ports, as the CRD allows', () => {
  const ports = (n: number): unknown => ({
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name: 'many-ports' },
    spec: {
      rules: [{ name: 'r', action: 'Allow', to: { ports: Array.from({ length: n }, (_, i) => String(i + 1)) } }],
    },
  });
  assert.deepEqual(validatePolicy(ports(256)), []);
  assert.deepEqual(validatePolicy(ports(257)).map(formatIssue), [
    'spec.rules[0].to.ports: has 257 entries, at most 256 are allowed',
  ]);
});
