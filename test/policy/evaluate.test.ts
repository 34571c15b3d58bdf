import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { couldAllowBeforeResolve, decideBeforeResolve, evaluate } from '../../src/policy/evaluate.ts';
import type { EvalContext, PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

/** Compiles one default-namespace policy named `p` and evaluates `ctx`. */
function decide(rules: PolicyRule[], ctx: Partial<EvalContext>) {
  return evaluate(compilePolicies([makePolicy('p', rules)]), makeContext(ctx));
}

/** The id of the deciding rule, or null; for readable tables. */
function ruleOf(rules: PolicyRule[], ctx: Partial<EvalContext>): string | null {
  return decide(rules, ctx).rule?.name ?? null;
}

const allowAll: PolicyRule = { name: 'all', action: 'Allow' };

describe('evaluate: a resolved destination is always checked against to.cidrs', () => {
  // 0.0.0.2 is the integer 2: no address may read as the "not resolved yet" marker, which skips
  // the to.cidrs check.
  it('0.0.0.1 to 0.0.0.3 and 255.255.255.255 miss a rule for 10.0.0.0/8', () => {
    const rules: PolicyRule[] = [{ name: 'ten', action: 'Deny', to: { cidrs: ['10.0.0.0/8'] } }];
    for (const destIp of ['0.0.0.1', '0.0.0.2', '0.0.0.3', '255.255.255.255']) {
      assert.equal(ruleOf(rules, { destIp }), null, destIp);
    }
    assert.equal(ruleOf(rules, { destIp: '10.9.8.7' }), 'ten');
  });
});

describe('evaluate: order', () => {
  it('denies with NoRuleMatched when nothing matches', () => {
    assert.deepEqual(decide([{ name: 'ssh', action: 'Allow', to: { ports: ['22'] } }], {}), {
      action: 'deny',
      reason: 'NoRuleMatched',
      tier: 'Default',
      rule: null,
      ident: 'Off',
      limits: null,
    });
    assert.equal(evaluate(compilePolicies([]), makeContext()).reason, 'NoRuleMatched');
  });

  it('lets the first matching rule decide, in rule order', () => {
    const rules: PolicyRule[] = [
      { name: 'deny-ssh', action: 'Deny', to: { ports: ['22'] } },
      allowAll,
      { name: 'never', action: 'Deny' },
    ];
    assert.deepEqual(decide(rules, { destPort: 22 }), {
      action: 'deny',
      reason: 'RuleDenied',
      tier: 'Namespace',
      rule: { policy: 'default/p', name: 'deny-ssh', id: 'default/p/deny-ssh' },
      ident: 'Off',
      limits: null,
    });
    assert.equal(decide(rules, { destPort: 80 }).rule?.name, 'all');
  });

  it('orders policies by priority, then namespace/name', () => {
    const set = compilePolicies([
      makePolicy('late', [{ name: 'allow', action: 'Allow' }], { priority: 2000 }),
      makePolicy('zeta', [{ name: 'deny', action: 'Deny' }], { namespace: 'alpha', priority: 500 }),
      makePolicy('early', [{ name: 'web-only', action: 'Allow', to: { ports: ['80'] } }], {
        namespace: 'beta',
        priority: 500,
      }),
      makePolicy('first', [{ name: 'ssh', action: 'Deny', to: { ports: ['22'] } }], { priority: 1 }),
    ]);
    assert.deepEqual(
      set.rules.map((r) => r.ref.id),
      ['default/first/ssh', 'alpha/zeta/deny', 'beta/early/web-only', 'default/late/allow'],
    );
    assert.equal(evaluate(set, makeContext({ destPort: 80 })).rule?.id, 'alpha/zeta/deny');
    assert.equal(evaluate(set, makeContext({ destPort: 22 })).rule?.id, 'default/first/ssh');
  });

  it('defaults priority to 1000', () => {
    const set = compilePolicies([
      makePolicy('a', [{ name: 'deny', action: 'Deny' }]),
      makePolicy('b', [allowAll], { priority: 999 }),
    ]);
    assert.equal(evaluate(set, makeContext()).rule?.id, 'default/b/all');
  });

  it('carries ident and limits of the allowing rule', () => {
    const limits = {
      connectionRate: { perSecond: 1, burst: 2, key: 'Rule' },
      bandwidth: { bytesPerSecond: 100, key: 'Session' },
    } as const;
    const d = decide([{ name: 'r', action: 'Allow', ident: 'Required', limits }], {});
    assert.deepEqual(d, {
      action: 'allow',
      reason: 'RuleAllowed',
      tier: 'Namespace',
      rule: { policy: 'default/p', name: 'r', id: 'default/p/r' },
      ident: 'Required',
      limits,
    });
  });
});

describe('evaluate: fields', () => {
  it('matches commands, both when omitted', () => {
    const rules: PolicyRule[] = [
      { name: 'bind', action: 'Allow', commands: ['Bind'] },
      { name: 'any', action: 'Deny' },
    ];
    assert.equal(ruleOf(rules, { command: 'bind' }), 'bind');
    assert.equal(ruleOf(rules, { command: 'connect' }), 'any');
    assert.equal(ruleOf([allowAll], { command: 'bind' }), 'all');
  });

  it('matches USERIDs exactly or by case-sensitive glob', () => {
    const rules: PolicyRule[] = [{ name: 'u', action: 'Allow', from: { userids: ['alice', 'svc-*', 'bot-??', ''] } }];
    const table: [string, boolean][] = [
      ['alice', true],
      ['Alice', false],
      ['alice2', false],
      ['svc-build', true],
      ['svc-', true],
      ['SVC-build', false],
      ['bot-01', true],
      ['bot-1', false],
      ['bot-001', false],
      ['', true],
      ['bob', false],
    ];
    for (const [userId, matches] of table) assert.equal(ruleOf(rules, { userId }) !== null, matches, userId);
  });

  it('matches host globs case-insensitively and never without a host name', () => {
    const rules: PolicyRule[] = [
      { name: 'h', action: 'Allow', to: { hosts: ['*.Example.COM', 'api.test', 'db-?.internal', 'cdn*'] } },
    ];
    const table: [string | null, boolean][] = [
      ['www.example.com', true],
      ['WWW.EXAMPLE.COM', true],
      ['a.b.example.com', true],
      ['example.com', false],
      ['www.example.com.', true],
      ['evilexample.com', false],
      ['API.test', true],
      ['api.test.evil', false],
      ['db-1.internal', true],
      ['db-12.internal', false],
      ['cdn.example.org', true],
      [null, false],
    ];
    for (const [host, matches] of table) assert.equal(ruleOf(rules, { host }) !== null, matches, String(host));
    assert.equal(ruleOf([{ name: 'fq', action: 'Allow', to: { hosts: ['api.test.'] } }], { host: 'api.test' }), 'fq');
  });

  it('matches port ranges at their boundaries', () => {
    const rules: PolicyRule[] = [{ name: 'p', action: 'Allow', to: { ports: ['1', '443', '8000-8999', '65535'] } }];
    const table: [number, boolean][] = [
      [1, true],
      [2, false],
      [442, false],
      [443, true],
      [444, false],
      [7999, false],
      [8000, true],
      [8999, true],
      [9000, false],
      [65534, false],
      [65535, true],
    ];
    for (const [destPort, matches] of table)
      assert.equal(ruleOf(rules, { destPort }) !== null, matches, String(destPort));
  });

  it('matches source CIDRs, including IPv4-mapped client addresses', () => {
    const rules: PolicyRule[] = [
      { name: 's', action: 'Allow', from: { cidrs: ['10.1.2.3/8', '::ffff:192.168.0.0/112', '172.16.0.1'] } },
    ];
    const table: [string, boolean][] = [
      ['10.0.0.0', true],
      ['10.255.255.255', true],
      ['11.0.0.0', false],
      ['9.255.255.255', false],
      ['::ffff:10.1.2.3', true],
      ['::FFFF:10.1.2.3', true],
      ['0:0:0:0:0:ffff:a01:203', true],
      ['::ffff:11.0.0.1', false],
      ['192.168.44.1', true],
      ['192.169.0.1', false],
      ['172.16.0.1', true],
      ['172.16.0.2', false],
      ['2001:db8::1', false],
      ['not-an-ip', false],
    ];
    for (const [sourceIp, matches] of table) assert.equal(ruleOf(rules, { sourceIp }) !== null, matches, sourceIp);
  });

  it('lets a rule without from.cidrs match any client, IPv6 included', () => {
    assert.equal(ruleOf([allowAll], { sourceIp: '2001:db8::1' }), 'all');
  });

  it('matches destination CIDRs on the resolved address, ANDed with the host', () => {
    const rules: PolicyRule[] = [
      { name: 'd', action: 'Allow', to: { cidrs: ['93.184.0.0/16'], hosts: ['*.example.com'] } },
    ];
    assert.equal(ruleOf(rules, { host: 'www.example.com', destIp: '93.184.216.34' }), 'd');
    assert.equal(ruleOf(rules, { host: 'www.example.com', destIp: '1.1.1.1' }), null);
    assert.equal(ruleOf(rules, { host: null, destIp: '93.184.216.34' }), null);
  });
});

describe('evaluate: SSRF guard', () => {
  const guarded = (rules: PolicyRule[], ctx: Partial<EvalContext>): string => {
    const d = decide(rules, ctx);
    return `${d.action} ${d.reason} ${d.rule?.name ?? '-'}`;
  };
  const toAll: PolicyRule = { name: 'internet', action: 'Allow', to: { cidrs: ['0.0.0.0/0'] } };

  it('refuses loopback under 0.0.0.0/0 and reports the rule', () => {
    assert.equal(guarded([toAll], { destIp: '127.0.0.1' }), 'deny GuardedDestination internet');
    assert.equal(guarded([toAll], { destIp: '127.255.0.9' }), 'deny GuardedDestination internet');
    assert.equal(guarded([toAll], { destIp: '::ffff:127.0.0.1' }), 'deny GuardedDestination internet');
    assert.equal(guarded([toAll], { destIp: '128.0.0.1' }), 'allow RuleAllowed internet');
    assert.deepEqual(
      decide([{ ...toAll, ident: 'Required', limits: { concurrentSessions: { max: 1, key: 'Rule' } } }], {
        destIp: '127.0.0.1',
      }),
      {
        action: 'deny',
        reason: 'GuardedDestination',
        tier: 'Namespace',
        rule: { policy: 'default/p', name: 'internet', id: 'default/p/internet' },
        ident: 'Off',
        limits: null,
        guard: 'loopback',
      },
    );
  });

  it('opens loopback only to rules naming a block inside it', () => {
    const one: PolicyRule = { name: 'one', action: 'Allow', to: { cidrs: ['127.0.0.1/32'] } };
    const all: PolicyRule = { name: 'lo', action: 'Allow', to: { cidrs: ['0.0.0.0/0', '127.0.0.0/8'] } };
    assert.equal(guarded([one], { destIp: '127.0.0.1' }), 'allow RuleAllowed one');
    assert.equal(guarded([one], { destIp: '127.0.0.2' }), 'deny NoRuleMatched -');
    assert.equal(guarded([all], { destIp: '127.9.9.9' }), 'allow RuleAllowed lo');
    assert.equal(
      guarded([{ name: 'wide', action: 'Allow', to: { cidrs: ['126.0.0.0/7'] } }], { destIp: '127.0.0.1' }),
      'deny GuardedDestination wide',
    );
  });

  it('refuses a host rule whose name resolves to loopback (DNS rebinding)', () => {
    const rules: PolicyRule[] = [{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'] } }];
    assert.equal(guarded(rules, { host: 'evil.example.com', destIp: '127.0.0.1' }), 'deny GuardedDestination web');
  });

  it('guards link-local (cloud metadata) and 0.0.0.0/8', () => {
    assert.equal(guarded([toAll], { destIp: '169.254.169.254' }), 'deny GuardedDestination internet');
    assert.equal(
      guarded([{ name: 'md', action: 'Allow', to: { cidrs: ['169.254.169.254/32'] } }], { destIp: '169.254.169.254' }),
      'allow RuleAllowed md',
    );
    assert.equal(guarded([toAll], { destIp: '0.0.0.0' }), 'deny GuardedDestination internet');
    assert.equal(guarded([toAll], { destIp: '0.1.2.3' }), 'deny GuardedDestination internet');
    assert.equal(
      guarded([{ name: 'zero', action: 'Allow', to: { cidrs: ['0.0.0.0/8'] } }], { destIp: '0.0.0.0' }),
      'allow RuleAllowed zero',
    );
  });

  it("guards the proxy's own addresses unless the rule names exactly that /32", () => {
    const selfAddresses = new Set(['10.0.0.5', '::ffff:10.0.0.6']);
    const net: PolicyRule = { name: 'net', action: 'Allow', to: { cidrs: ['10.0.0.0/8'] } };
    assert.equal(guarded([net], { destIp: '10.0.0.5', selfAddresses }), 'deny GuardedDestination net');
    assert.equal(guarded([net], { destIp: '10.0.0.6', selfAddresses }), 'deny GuardedDestination net');
    assert.equal(guarded([net], { destIp: '10.0.0.7', selfAddresses }), 'allow RuleAllowed net');
    assert.equal(
      guarded([{ name: 'lan', action: 'Allow', to: { cidrs: ['10.0.0.0/24'] } }], {
        destIp: '10.0.0.5',
        selfAddresses,
      }),
      'deny GuardedDestination lan',
    );
    assert.equal(
      guarded([{ name: 'me', action: 'Allow', to: { cidrs: ['10.0.0.5/32'] } }], { destIp: '10.0.0.5', selfAddresses }),
      'allow RuleAllowed me',
    );
  });

  it('lets loopback rules govern a self address inside loopback', () => {
    const selfAddresses = new Set(['127.0.0.1']);
    assert.equal(
      guarded([{ name: 'lo', action: 'Allow', to: { cidrs: ['127.0.0.0/8'] } }], {
        destIp: '127.0.0.1',
        selfAddresses,
      }),
      'allow RuleAllowed lo',
    );
  });

  it('stops at the guarded rule rather than trying later rules', () => {
    const rules: PolicyRule[] = [toAll, { name: 'lo', action: 'Allow', to: { cidrs: ['127.0.0.0/8'] } }];
    assert.equal(guarded(rules, { destIp: '127.0.0.1' }), 'deny GuardedDestination internet');
  });

  it('refuses a destination that is not IPv4', () => {
    assert.equal(guarded([allowAll], { destIp: '::1' }), 'deny GuardedDestination all');
  });
});

describe('decideBeforeResolve / couldAllowBeforeResolve', () => {
  const base = {
    command: 'connect',
    sourceIp: '10.0.0.1',
    userId: 'alice',
    destPort: 443,
    selfAddresses: new Set<string>(),
  } as const;
  const check = (rules: PolicyRule[], host: string) => {
    const set = compilePolicies([makePolicy('p', rules)]);
    const ctx = { ...base, host };
    const early = decideBeforeResolve(set, ctx);
    assert.equal(couldAllowBeforeResolve(set, ctx), early === null);
    return early === null ? 'resolve' : `${early.reason} ${early.rule?.name ?? '-'}`;
  };

  it('resolves names some allow rule could accept', () => {
    assert.equal(
      check([{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'] } }], 'www.example.com'),
      'resolve',
    );
    assert.equal(
      check([{ name: 'net', action: 'Allow', to: { cidrs: ['93.184.0.0/16'] } }], 'anything.org'),
      'resolve',
    );
  });

  it('skips names no allow rule could accept', () => {
    assert.equal(
      check([{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'] } }], 'evil.org'),
      'NoRuleMatched -',
    );
    assert.equal(
      check([{ name: 'web', action: 'Allow', to: { hosts: ['*.example.com'], ports: ['80'] } }], 'www.example.com'),
      'NoRuleMatched -',
    );
    assert.equal(check([], 'www.example.com'), 'NoRuleMatched -');
  });

  it('stops at a deny rule that matches whatever the address', () => {
    assert.equal(
      check([{ name: 'no', action: 'Deny', to: { hosts: ['*.example.com'] } }, allowAll], 'www.example.com'),
      'RuleDenied no',
    );
  });

  it('looks past a deny rule that depends on the address', () => {
    assert.equal(
      check([{ name: 'no', action: 'Deny', to: { cidrs: ['10.0.0.0/8'] } }, allowAll], 'www.example.com'),
      'resolve',
    );
  });
});
