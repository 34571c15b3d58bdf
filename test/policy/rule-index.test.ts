// The rule index (src/policy/rule-index.ts) is an optimisation only: a large set's decisions are
// exactly those of a plain first-match scan. These cases sit where an index can go wrong — at the
// edges of its intervals, below and above every key, for keys that are no address, and for
// pattern lists that mix exact names with globs. Each asserts the decision, and that the set
// really is indexed on the dimension in question (otherwise the case tests nothing).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import type { EvalContext, PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

/** One policy: `n` filler rules, then `extra`, in that order. */
function indexed(dimension: string, n: number, filler: (i: number) => Omit<PolicyRule, 'name'>, extra: PolicyRule[]) {
  const rules = [...Array.from({ length: n }, (_, i) => ({ name: `f${i}`, ...filler(i) }) as PolicyRule), ...extra];
  const set = compilePolicies([makePolicy('p', rules)]);
  assert.equal(set.index.dimension, dimension, 'the set is indexed as the case intends');
  return (ctx: Partial<EvalContext>) => {
    const d = evaluate(set, makeContext(ctx));
    return `${d.reason} ${d.rule?.name ?? '-'}`;
  };
}

describe('rule index: numeric keys at the edges of the intervals', () => {
  it('a port range among single ports: one below, at, inside, at the end of and one past the range', () => {
    const decide = indexed('port', 100, (i) => ({ action: 'Deny', to: { ports: [String(i + 1)] } }), [
      { name: 'range', action: 'Allow', to: { ports: ['1000-2000'] } },
      { name: 'high', action: 'Deny', to: { ports: ['65535'] } },
    ]);
    const got = [1, 100, 101, 999, 1000, 1500, 2000, 2001, 65534, 65535].map((destPort) => decide({ destPort }));
    assert.deepEqual(got, [
      'RuleDenied f0',
      'RuleDenied f99',
      'NoRuleMatched -',
      'NoRuleMatched -',
      'RuleAllowed range',
      'RuleAllowed range',
      'RuleAllowed range',
      'NoRuleMatched -',
      'NoRuleMatched -',
      'RuleDenied high',
    ]);
  });

  it('client addresses below, between and above every indexed network, and a client that is no IPv4 address', () => {
    const decide = indexed('source', 100, (i) => ({ action: 'Deny', from: { cidrs: [`10.0.${i}.0/24`] } }), [
      { name: 'high', action: 'Allow', from: { cidrs: ['192.168.0.0/16'] } },
    ]);
    const clients = ['0.0.0.0', '9.255.255.255', '10.0.0.0', '10.0.99.255', '10.0.100.0', '192.168.255.255'];
    assert.deepEqual(
      [...clients, '192.169.0.0', '255.255.255.255', '2001:db8::1'].map((sourceIp) => decide({ sourceIp })),
      [
        'NoRuleMatched -',
        'NoRuleMatched -',
        'RuleDenied f0',
        'RuleDenied f99',
        'NoRuleMatched -',
        'RuleAllowed high',
        'NoRuleMatched -',
        'NoRuleMatched -',
        'NoRuleMatched -',
      ],
    );
  });

  it('destination 0.0.0.0 is in the network that starts at 0, a destination that is no IPv4 address in none', () => {
    const decide = indexed('destination', 100, (i) => ({ action: 'Deny', to: { cidrs: [`11.0.${i}.1/32`] } }), [
      { name: 'zero', action: 'Deny', to: { cidrs: ['0.0.0.0/8'] } },
    ]);
    assert.deepEqual(
      ['0.0.0.0', '11.0.5.1', '11.0.5.2', '::1'].map((destIp) => decide({ destIp })),
      ['RuleDenied zero', 'RuleDenied f5', 'NoRuleMatched -', 'NoRuleMatched -'],
    );
  });
});

describe('rule index: a rule too wide for the buckets', () => {
  it('a range over more intervals than a rule may be filed under is still tried for every key', () => {
    const decide = indexed(
      'port',
      100,
      (i) => ({ action: 'Deny', commands: ['Bind'], to: { ports: [String(i + 1)] } }),
      [{ name: 'wide', action: 'Allow', to: { ports: ['1-100'] } }],
    );
    assert.deepEqual(
      [1, 50, 100, 101].map((destPort) => decide({ destPort })),
      ['RuleAllowed wide', 'RuleAllowed wide', 'RuleAllowed wide', 'NoRuleMatched -'],
    );
    assert.equal(decide({ destPort: 50, command: 'bind' }), 'RuleDenied f49');
  });
});

describe('rule index: names', () => {
  // Only rules listing exact names alone are filed under those names; a list that also holds a
  // prefix, a suffix, another pattern or `*` must be tried for every name.
  const extra: PolicyRule[] = [
    { name: 'prefix', action: 'Allow', from: { userids: ['admin', 'ops-*'] } },
    { name: 'suffix', action: 'Allow', from: { userids: ['root', '*-bot'] } },
    { name: 'pattern', action: 'Allow', from: { userids: ['guest', 'a?c*d'] } },
    { name: 'shared', action: 'Deny', from: { userids: ['u7', 'u8'] } },
    { name: 'any', action: 'Allow', from: { userids: ['*'] }, to: { ports: ['8080'] } },
  ];
  const decide = indexed(
    'userid',
    100,
    (i) => ({ action: 'Allow', commands: ['Bind'], from: { userids: [`u${i}`] } }),
    extra,
  );

  it('exact names, names a glob of a mixed list matches, and `*`', () => {
    const users = ['admin', 'ops-1', 'root', 'ci-bot', 'guest', 'abcd', 'axcyyd', 'u7', 'u8', 'u99', 'nobody'];
    assert.deepEqual(
      users.map((userId) => decide({ userId })),
      [
        'RuleAllowed prefix',
        'RuleAllowed prefix',
        'RuleAllowed suffix',
        'RuleAllowed suffix',
        'RuleAllowed pattern',
        'RuleAllowed pattern',
        'RuleAllowed pattern',
        'RuleDenied shared',
        'RuleDenied shared',
        'NoRuleMatched -',
        'NoRuleMatched -',
      ],
    );
    assert.equal(decide({ userId: 'nobody', destPort: 8080 }), 'RuleAllowed any');
  });

  it('a name filed under several rules finds each in rule order', () => {
    assert.equal(decide({ userId: 'u7', command: 'bind' }), 'RuleAllowed f7');
    assert.equal(decide({ userId: 'u99', command: 'bind' }), 'RuleAllowed f99');
    assert.equal(decide({ userId: 'u0', command: 'bind' }), 'RuleAllowed f0');
  });

  it('hosts: the last name filed is found like the first, and a request without a name finds none', () => {
    const byHost = indexed('host', 100, (i) => ({ action: 'Deny', to: { hosts: [`h${i}.example`] } }), [
      { name: 'wild', action: 'Allow', to: { hosts: ['last.example', '*.wild.example'] } },
    ]);
    assert.deepEqual(
      ['h0.example', 'h99.example', 'last.example', 'a.wild.example', 'other.example', null].map((host) =>
        byHost({ host }),
      ),
      ['RuleDenied f0', 'RuleDenied f99', 'RuleAllowed wild', 'RuleAllowed wild', 'NoRuleMatched -', 'NoRuleMatched -'],
    );
  });
});
