// `policy validate FILE` on multi-document YAML: every problem is one line that says which
// document (or which policy, once it has a name) and what to fix; YAML errors keep only their
// first line (the position), never the code frame; empty documents count but are skipped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadPolicyText } from '../../src/policy/load.ts';
import { formatIssue } from '../../src/policy/validate.ts';

const RULES = '  rules:\n    - name: all\n      action: Allow\n';

function doc(name: string, { kind = 'Socks4Policy', meta = '', spec = RULES } = {}): string {
  return `apiVersion: socks4-fleet.io/v1alpha1\nkind: ${kind}\nmetadata:\n  name: ${name}\n${meta}spec:\n${spec}`;
}

function load(text: string): { lines: string[]; loaded: string[] } {
  const { policies, issues } = loadPolicyText(text, 'p.yaml');
  return {
    lines: issues.map(formatIssue),
    loaded: policies.map(
      (p) => `${p.metadata.namespace ?? '(cluster)'}/${p.metadata.name} priority ${p.spec.priority}`,
    ),
  };
}

describe('policy file loading: one line per problem', () => {
  it('a YAML syntax error keeps its first line with the position, without the trailing colon', () => {
    assert.deepEqual(load('spec: [1,\n').lines, [
      'p.yaml document 1: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1',
    ]);
  });

  it('a YAML error whose first line quotes a colon keeps it; only the trailing colon goes', () => {
    assert.deepEqual(load('- a\nb: 1\n').lines, [
      'p.yaml document 1: Unexpected scalar at node end at line 2, column 1',
      'p.yaml document 1: Unexpected map-value-ind token in YAML stream: ":" at line 2, column 2',
      'p.yaml document 1: Unexpected scalar token in YAML stream: "1" at line 2, column 4',
    ]);
  });

  it('a broken document does not hide the problems of the next one', () => {
    assert.deepEqual(load(`spec: [1,\n---\n${doc('Bad')}`).lines, [
      'p.yaml document 1: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1',
      `default/Bad: metadata.name: "Bad" is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)`,
    ]);
  });

  it('a document that is no mapping is named by its position, empty documents counted', () => {
    assert.deepEqual(load(`${doc('a')}---\n# nothing\n---\n- x\n`), {
      lines: ['p.yaml document 3: document must be a mapping, got a list'],
      loaded: ['default/a priority 1000'],
    });
  });

  it('a document without a usable name is named by its position', () => {
    assert.deepEqual(load(doc('""')).lines, [
      `p.yaml document 1: metadata.name: "" is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)`,
    ]);
    assert.deepEqual(load(doc('7')).lines, ['p.yaml document 1: metadata.name: must be a string, got 7']);
  });

  it('an alias bomb is refused with one line', () => {
    const bomb =
      'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    assert.deepEqual(load(bomb), {
      lines: ['p.yaml document 1: Excessive alias count indicates a resource exhaustion attack'],
      loaded: [],
    });
  });

  it('a few aliases are fine', () => {
    const text = doc('a', {
      spec: '  rules:\n    - name: all\n      action: Allow\n      to: {ports: &p ["80"]}\n    - {name: b, action: Deny, to: {ports: *p}}\n',
    });
    assert.deepEqual(load(text), { lines: [], loaded: ['default/a priority 1000'] });
  });

  it('defaults: namespace default and priority 1000, an explicit priority 0 kept', () => {
    const text = `${doc('a')}---\n${doc('b', { meta: '  namespace: team\n', spec: `  priority: 0\n${RULES}` })}---\n${doc('c', { kind: 'ClusterSocks4Policy' })}`;
    assert.deepEqual(load(text), {
      lines: [],
      loaded: ['default/a priority 1000', 'team/b priority 0', '(cluster)/c priority 1000'],
    });
  });

  it('a duplicate cluster policy is named without a namespace; the first one is kept', () => {
    const text = `${doc('c', { kind: 'ClusterSocks4Policy' })}---\n${doc('c', { kind: 'ClusterSocks4Policy', spec: `  priority: 5\n${RULES}` })}`;
    assert.deepEqual(load(text), {
      lines: ['c: metadata.name: duplicate policy c (first defined in document 1)'],
      loaded: ['(cluster)/c priority 1000'],
    });
  });

  // '*a?b*' costs 8 + 3 × 256 = 776 (match-cost.ts); 200 of them make a policy of 155 200, under
  // the per-policy bound: six such policies (931 200) are under the per-set bound, seven are over.
  const globs = `  rules:\n    - name: all\n      action: Allow\n      from:\n        userids: [${Array.from({ length: 200 }, () => '"*a?b*"').join(', ')}]\n`;
  const policies = (n: number): string =>
    Array.from({ length: n }, (_, i) => doc(`p${i}`, { spec: globs })).join('---\n');

  it('the glob cost of all policies of a file together is bounded', () => {
    assert.deepEqual(load(policies(7)).lines, [
      "p.yaml: its policies' globs may cost 1086400 comparisons a decision together, at most 1000000 are allowed (use exact names, prefix* or *suffix, or fewer patterns with a middle '*' or '?')",
    ]);
    assert.deepEqual(load(policies(6)).lines, []);
  });
  it('the per-set bound itself is allowed', () => {
    // Exact USERIDs of 242 characters cost 250 each: four policies of 1000 make exactly 1 000 000.
    const exact = (name: string, length: number): string =>
      doc(name, {
        spec: `  rules:\n    - name: all\n      action: Allow\n      from:\n        userids: [${Array.from({ length: 1000 }, () => 'u'.repeat(length)).join(', ')}]\n`,
      });
    assert.deepEqual(load([0, 1, 2, 3].map((i) => exact(`p${i}`, 242)).join('---\n')).lines, []);
    assert.deepEqual(
      load(
        [0, 1, 2, 3].map((i) => exact(`p${i}`, 242)).join('---\n') +
          `---\n${doc('one-more', { spec: '  rules:\n    - {name: all, action: Allow, from: {userids: [u]}}\n' })}`,
      ).lines,
      [
        "p.yaml: its policies' globs may cost 1000009 comparisons a decision together, at most 1000000 are allowed (use exact names, prefix* or *suffix, or fewer patterns with a middle '*' or '?')",
      ],
    );
  });
});
