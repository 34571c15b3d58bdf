// The Helm chart without a cluster: helm lint --strict, the helm-unittest suites, values.yaml ⇄
// values.schema.json drift, and the operator's exact RBAC and CRD. That values.schema.json and the
// deploy/ copies under files/ are what `make generate` makes is test/generate/'s job.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments, parseDocument } from 'yaml';
import { repoRoot } from '../helpers/spawn.ts';
import { chartDir, helmEnv, mustRun, requireTools, runTool } from './tools.ts';
import { findOpenObjects, findValuesDrift, type JsonSchema } from './values-schema.ts';

const fixtures = path.join(import.meta.dirname, 'fixtures');
let home: string;

before(() => {
  requireTools('helm', 'helm-plugins/unittest/untt');
  home = mkdtempSync(path.join(tmpdir(), 'chart-test-'));
});
after(() => rmSync(home, { recursive: true, force: true }));

const helm = (...args: string[]) => runTool('helm', args, { env: helmEnv(home) });
const readYaml = (file: string): unknown => parseDocument(readFileSync(path.join(repoRoot, file), 'utf8')).toJS();

describe('helm lint --strict', () => {
  for (const values of [null, 'e2e.values.yaml', 'all-features.values.yaml']) {
    test(values === null ? 'default values' : values, async () => {
      const result = await helm(
        'lint',
        '--strict',
        chartDir,
        ...(values === null ? [] : ['-f', path.join(fixtures, values)]),
      );
      const output = result.stdout + result.stderr;
      assert.equal(result.code, 0, output);
      assert.match(output, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      // Lint renders with `fail` turned into a log line; a message here is a real render failure.
      assert.doesNotMatch(output, /funcMap fail|\[(ERROR|WARNING)\]/, output);
    });
  }
});

test('helm unittest: every suite under charts/socks4-fleet/tests passes', async () => {
  const result = await helm('unittest', chartDir);
  const output = result.stdout + result.stderr;
  assert.equal(result.code, 0, output);
  const suites = Number(/Test Suites:\s+(\d+) passed, (\d+) total/.exec(output)?.[2]);
  const tests = /Tests:\s+(\d+) passed, (\d+) total/.exec(output);
  assert.ok(suites >= 15, `expected the suites split by concern, got ${suites}:\n${output}`);
  assert.ok(tests !== null && tests[1] === tests[2] && Number(tests[1]) >= 100, output);
});

describe('values.yaml and values.schema.json', () => {
  const schema = JSON.parse(readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8')) as JsonSchema;
  const values = parseDocument(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8'));

  test('the schema is strict at every level', () => {
    assert.deepEqual(findOpenObjects(schema), []);
  });

  test('values.yaml declares exactly the schema keys, each with its comment', () => {
    assert.deepEqual(values.errors, []);
    assert.deepEqual(findValuesDrift(values, schema), []);
  });

  // The checker itself, on small cases, so a green drift test means something.
  test('the drift check notices a missing, an extra and an undocumented key, and an open object', () => {
    const tiny: JsonSchema = {
      type: 'object',
      additionalProperties: false,
      properties: {
        a: {
          type: 'object',
          additionalProperties: false,
          properties: { b: { type: 'integer' }, c: { type: 'string' } },
        },
        open: { type: 'object' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        affinity: { type: 'object', $comment: 'Kubernetes Affinity, passed through unchanged' },
      },
    };
    assert.deepEqual(findOpenObjects(tiny), [
      '(root).open: open object (set additionalProperties: false, a typed map, or a "Kubernetes <Type>" $comment)',
    ]);
    const doc = parseDocument(
      '# A.\na:\n  # -- B.\n  b: 1\n  d: 2\n# -- Open.\nopen: {}\nlabels: {}\n# no dashes\naffinity: {}\n',
    );
    assert.deepEqual(findValuesDrift(doc, tiny), [
      'a.d: in values.yaml but not in values.schema.json',
      'a.c: in values.schema.json but not declared in values.yaml',
      'labels: no comment above it in values.yaml',
      'affinity: its comment does not start with "# --"',
    ]);
  });
});

test('helm refuses a timeout of "0" or a bare number where the proxy would, and takes "0" for the idle timeout', async () => {
  const render = (...set: string[]) => helm('template', 'r1', chartDir, ...set.flatMap((s) => ['--set-string', s]));
  for (const value of ['proxy.timeouts.handshake=0', 'proxy.timeouts.connect=0s', 'proxy.timeouts.ident=10']) {
    const result = await render(value);
    assert.notEqual(result.code, 0, `${value} must be refused`);
    assert.match(result.stderr, /values don't meet the specifications of the schema|schema/i, result.stderr);
    assert.match(result.stderr, /timeouts/, result.stderr);
  }
  const idle = await render('proxy.timeouts.idle=0', 'proxy.timeouts.handshake=1500ms');
  assert.equal(idle.code, 0, idle.stderr);
  assert.match(idle.stdout, /- --idle-timeout\n\s+- "0"\n/);
  assert.match(idle.stdout, /- --handshake-timeout\n\s+- "1500ms"\n/);
});

describe("the operator's own RBAC rules and CRD, as rendered", () => {
  const render = async (template: string, ...set: string[]) => {
    const text = await mustRun(
      'helm',
      ['template', 'r1', chartDir, '-n', 'ns1', '--show-only', template, ...set.flatMap((s) => ['--set', s])],
      { env: helmEnv(home) },
    );
    return parseAllDocuments(text).map(
      (doc) => doc.toJS() as { kind: string; rules?: unknown; spec?: unknown; metadata: { name: string } },
    );
  };

  test('the ClusterRole carries exactly deploy/rbac/operator-clusterrole.yaml', async () => {
    const expected = readYaml('deploy/rbac/operator-clusterrole.yaml') as { rules: unknown };
    const docs = await render('templates/operator/rbac.yaml');
    assert.deepEqual(docs.find((doc) => doc.kind === 'ClusterRole')?.rules, expected.rules);
  });

  test("the Lease Role carries deploy/rbac/operator-leader-election-role.yaml, for this release's Lease", async () => {
    const expected = readYaml('deploy/rbac/operator-leader-election-role.yaml') as {
      rules: { resourceNames?: string[] }[];
    };
    const renamed = expected.rules.map((rule) =>
      rule.resourceNames ? { ...rule, resourceNames: ['r1-socks4-fleet-operator'] } : rule,
    );
    const docs = await render('templates/operator/rbac.yaml', 'operator.replicas=2');
    assert.deepEqual(docs.find((doc) => doc.kind === 'Role')?.rules, renamed);
  });

  test('the cluster policies ClusterRole carries exactly deploy/rbac/operator-cluster-policies-role.yaml', async () => {
    const expected = readYaml('deploy/rbac/operator-cluster-policies-role.yaml') as { rules: unknown };
    const docs = await render('templates/operator/rbac.yaml', 'operator.watchNamespaces={team-a}');
    assert.deepEqual(
      docs.find((doc) => doc.kind === 'ClusterRole' && doc.metadata.name.endsWith('-cluster-policies'))?.rules,
      expected.rules,
    );
  });

  test('the cluster CRD is deploy/crd/clustersocks4policies.yaml, spec unchanged', async () => {
    const expected = readYaml('deploy/crd/clustersocks4policies.yaml') as { spec: unknown; metadata: { name: string } };
    const [crd] = await render('templates/crd/clustersocks4policies.yaml');
    assert.equal(crd?.metadata.name, expected.metadata.name);
    assert.deepEqual(crd?.spec, expected.spec);
  });

  test('the CRD is deploy/crd/socks4policies.yaml, spec unchanged', async () => {
    const expected = readYaml('deploy/crd/socks4policies.yaml') as { spec: unknown; metadata: { name: string } };
    const [crd] = await render('templates/crd/socks4policies.yaml');
    assert.equal(crd?.metadata.name, expected.metadata.name);
    assert.deepEqual(crd?.spec, expected.spec);
  });
});
