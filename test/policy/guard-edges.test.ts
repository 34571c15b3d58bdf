// The SSRF guard at the edges of its ranges: the first and last address of each guarded block is
// refused under a rule for "the internet", and the public neighbour on either side is allowed.
// An off-by-one in a range bound (`<` for `<=`) moves exactly these addresses, so they are what
// a test of the guard must name; the middle of a range proves nothing about its ends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/policy/compile.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import type { PolicyRule } from '../../src/policy/types.ts';
import { makeContext, makePolicy } from './fixtures.ts';

const internet: PolicyRule = { name: 'internet', action: 'Allow', to: { cidrs: ['0.0.0.0/0'] } };

function verdict(rules: PolicyRule[], destIp: string): string {
  const d = evaluate(compilePolicies([makePolicy('p', rules)]), makeContext({ destIp }));
  return `${d.action} ${d.reason}`;
}

// [guarded block, first, last, public address below, public address above]
const edges: Array<[string, string, string, string | null, string]> = [
  ['0.0.0.0/8', '0.0.0.0', '0.255.255.255', null, '1.0.0.0'],
  ['127.0.0.0/8', '127.0.0.0', '127.255.255.255', '126.255.255.255', '128.0.0.0'],
  ['169.254.0.0/16', '169.254.0.0', '169.254.255.255', '169.253.255.255', '169.255.0.0'],
];

describe('SSRF guard: range edges', () => {
  for (const [block, first, last, below, above] of edges) {
    it(`${block}: ${first} and ${last} are guarded, the neighbours outside are not`, () => {
      assert.equal(verdict([internet], first), 'deny GuardedDestination', first);
      assert.equal(verdict([internet], last), 'deny GuardedDestination', last);
      if (below !== null) assert.equal(verdict([internet], below), 'allow RuleAllowed', below);
      assert.equal(verdict([internet], above), 'allow RuleAllowed', above);
    });

    it(`${block}: a rule naming the block opens both of its ends`, () => {
      const named: PolicyRule = { name: 'named', action: 'Allow', to: { cidrs: [block] } };
      assert.equal(verdict([named], first), 'allow RuleAllowed', first);
      assert.equal(verdict([named], last), 'allow RuleAllowed', last);
    });
  }

  it('a rule reaching one address past a block does not open it (the rule must lie inside)', () => {
    // 127.0.0.0/7 is 126.0.0.0–127.255.255.255: it contains loopback but is not inside it.
    const wide: PolicyRule = { name: 'wide', action: 'Allow', to: { cidrs: ['126.0.0.0/7'] } };
    assert.equal(verdict([wide], '127.255.255.255'), 'deny GuardedDestination');
    assert.equal(verdict([wide], '126.255.255.255'), 'allow RuleAllowed');
    // 169.254.0.0/15 runs on to 169.255.255.255.
    const linkWide: PolicyRule = { name: 'link-wide', action: 'Allow', to: { cidrs: ['169.254.0.0/15'] } };
    assert.equal(verdict([linkWide], '169.254.255.255'), 'deny GuardedDestination');
    assert.equal(verdict([linkWide], '169.255.0.0'), 'allow RuleAllowed');
  });
});
