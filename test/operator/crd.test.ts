// The hand-written CRD on a real API server: accepted, bounded, and refusing bad objects with
// messages that name the field. What the schema lets through is then the proxy's validation's
// job (the operator reports it as Ready=False; see operator.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { validatePolicy } from '../../src/policy/validate.ts';
import { repoRoot } from '../helpers/spawn.ts';
import { CRD_PATH, policyManifest, startTestCluster, type TestCluster } from './cluster.ts';

let cluster: TestCluster;
let dir: string;

before(async () => {
  cluster = await startTestCluster();
  dir = mkdtempSync(join(tmpdir(), 'crd-test-'));
});

after(async () => {
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

let fileCount = 0;
async function apply(doc: unknown): Promise<string> {
  const file = join(dir, `doc-${fileCount++}.yaml`);
  writeFileSync(file, typeof doc === 'string' ? doc : stringify(doc));
  try {
    return await cluster.kubectl('apply', '-f', file);
  } catch (error) {
    throw new Error((error as { stderr?: string }).stderr ?? String(error));
  }
}

test('the CRD is established with its names, status subresource and printer columns', async () => {
  const crd = JSON.parse(await cluster.kubectl('get', 'crd', 'socks4policies.socks4-fleet.io', '-o', 'json'));
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(crd.spec.names.shortNames, ['s4p']);
  assert.equal(crd.status.acceptedNames.kind, 'Socks4Policy');
  const version = crd.spec.versions[0];
  assert.equal(version.name, 'v1alpha1');
  assert.deepEqual(version.subresources, { status: {} });
  assert.deepEqual(
    version.additionalPrinterColumns
      .filter((c: { priority?: number }) => (c.priority ?? 0) === 0)
      .map((c: { name: string }) => c.name),
    ['Ready', 'Rules', 'Enforcement', 'Age'],
  );
  const established = crd.status.conditions.find((c: { type: string }) => c.type === 'Established');
  assert.equal(established.status, 'True');
});

test('every list and string in the schema is bounded', () => {
  const crd = parse(readFileSync(CRD_PATH, 'utf8'));
  const unbounded: string[] = [];
  const walk = (node: Record<string, unknown>, path: string): void => {
    if (node.type === 'array' && node.maxItems === undefined) unbounded.push(path);
    if (
      node.type === 'string' &&
      node.maxLength === undefined &&
      node.enum === undefined &&
      node.format !== 'date-time'
    )
      unbounded.push(path);
    for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
      if (!(path === '' && ['apiVersion', 'kind'].includes(key))) walk(child, `${path}.${key}`);
    }
    if (typeof node.items === 'object' && node.items !== null) walk(node.items as Record<string, unknown>, `${path}[]`);
  };
  walk(crd.spec.versions[0].schema.openAPIV3Schema, '');
  assert.deepEqual(unbounded, []);
});

test('the example policy file applies as-is and lists with the short name and printer columns', async () => {
  await cluster.createNamespace('examples');
  const out = await cluster.kubectl('apply', '-n', 'examples', '-f', join(repoRoot, 'examples/policy.yaml'));
  assert.match(out, /socks4policy\.socks4-fleet\.io\/local-dev created/);
  const table = await cluster.kubectl('get', 's4p', '-n', 'examples');
  assert.match(table.split('\n')[0] ?? '', /^NAME\s+READY\s+RULES\s+ENFORCEMENT\s+AGE$/);
  assert.match(table, /^local-dev\s+\S*\s+\S*\s+Enforce\s/m);
  const stored = JSON.parse(await cluster.kubectl('get', 's4p', 'office-egress', '-n', 'examples', '-o', 'json'));
  assert.equal(stored.spec.rules[1].ident, 'Optional');
});

type Case = { what: string; rule: Record<string, unknown>; field: string; message: RegExp };
const invalid: Case[] = [
  {
    what: 'a CIDR with an octet over 255',
    rule: { from: { cidrs: ['10.0.0.300/8'] } },
    field: 'spec.rules[0].from.cidrs[0]',
    message: /"10\.0\.0\.300\/8"/,
  },
  {
    what: 'a CIDR prefix over 32',
    rule: { to: { cidrs: ['10.0.0.0/33'] } },
    field: 'spec.rules[0].to.cidrs[0]',
    message: /should match/,
  },
  { what: 'port 0', rule: { to: { ports: ['0'] } }, field: 'spec.rules[0].to.ports[0]', message: /"0"/ },
  {
    what: 'port 70000',
    rule: { to: { ports: ['443', '70000'] } },
    field: 'spec.rules[0].to.ports[1]',
    message: /"70000"/,
  },
  {
    what: 'a reversed port range',
    rule: { to: { ports: ['9000-8000'] } },
    field: 'spec.rules[0].to.ports[0]',
    message: /low-high/,
  },
  {
    what: 'a port as a number',
    rule: { to: { ports: [443] } },
    field: 'spec.rules[0].to.ports[0]',
    message: /must be of type string/,
  },
  {
    what: 'burst below perSecond',
    rule: { limits: { connectionRate: { perSecond: 10, burst: 5, key: 'SourceIP' } } },
    field: 'spec.rules[0].limits.connectionRate.burst',
    message: /burst must be at least perSecond/,
  },
  {
    what: 'an unknown limit key',
    rule: { limits: { bandwidth: { bytesPerSecond: 10, key: 'Everyone' } } },
    field: 'spec.rules[0].limits.bandwidth.key',
    message: /Unsupported value: "Everyone"/,
  },
  {
    what: 'an unknown field',
    rule: { form: { cidrs: ['10.0.0.0/8'] } },
    field: 'spec.rules[0].form',
    message: /unknown field/,
  },
  {
    what: 'an empty list',
    rule: { from: { userids: [] } },
    field: 'spec.rules[0].from.userids',
    message: /at least 1 items?/,
  },
  {
    what: 'a host glob with a space',
    rule: { to: { hosts: ['exa mple.com'] } },
    field: 'spec.rules[0].to.hosts[0]',
    message: /should match/,
  },
  {
    what: 'a rule name that is not a DNS label',
    rule: { name: 'Web_1' },
    field: 'spec.rules[0].name',
    message: /should match/,
  },
];

for (const c of invalid) {
  test(`the API server refuses ${c.what}, naming ${c.field}`, async () => {
    const doc = policyManifest('default', 'bad', { rules: [{ name: 'r', action: 'Allow', ...c.rule }] });
    const error = await apply(doc).then(
      () => null,
      (e: Error) => e.message,
    );
    assert.notEqual(error, null, 'accepted');
    assert.ok(error?.includes(c.field), error ?? '');
    assert.match(error ?? '', c.message);
    // The proxy's own validation refuses it too: the schema is never the only guard.
    assert.notDeepEqual(validatePolicy(doc), []);
  });
}

test('an internationalised host glob is accepted, and stored as written (the proxy matches its punycode form)', async () => {
  const doc = policyManifest('default', 'idn', {
    rules: [{ name: 'books', action: 'Deny', to: { hosts: ['*.bücher.example'] } }],
  });
  assert.match(await apply(doc), /created/);
  assert.deepEqual(validatePolicy(doc), []);
  const stored = JSON.parse(await cluster.kubectl('get', 's4p', 'idn', '-o', 'json'));
  assert.deepEqual(stored.spec.rules[0].to.hosts, ['*.bücher.example']);
});

test('duplicate rule names are refused on spec.rules', async () => {
  const doc = policyManifest('default', 'dup', {
    rules: [
      { name: 'web', action: 'Allow' },
      { name: 'web', action: 'Deny' },
    ],
  });
  const error = await apply(doc).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.match(error ?? 'accepted', /spec\.rules: Invalid value: .*rule names must be unique within a policy/);
});

test('a bare Off (YAML 1.1 boolean) for ident is refused with the field and the allowed values', async () => {
  const text = stringify(
    policyManifest('default', 'ident', { rules: [{ name: 'r', action: 'Allow', ident: 'OFF_PLACEHOLDER' }] }),
  ).replace('OFF_PLACEHOLDER', 'Off');
  const error = await apply(text).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.match(
    error ?? 'accepted',
    /spec\.rules\[0\]\.ident: Unsupported value: false: supported values: "Off", "Optional", "Required"/,
  );
});

test("a policy that passes the schema but not the proxy's validation is stored (the operator reports it)", async () => {
  const doc = policyManifest('default', 'deny-with-limits', {
    rules: [{ name: 'r', action: 'Deny', limits: { concurrentSessions: { max: 5, key: 'Rule' } } }],
  });
  assert.match(await apply(doc), /created/);
  assert.deepEqual(
    validatePolicy(doc).map((i) => i.path),
    ['spec.rules[0].limits'],
  );
  const stored = JSON.parse(await cluster.kubectl('get', 's4p', 'deny-with-limits', '-o', 'json'));
  assert.equal(stored.spec.priority, 1000, 'the schema defaults the priority');
});

test('spec.enforcement: Report is stored and shown in its column, omitted defaults to Enforce, the one-word edit applies', async () => {
  await cluster.createNamespace('rollout');
  const rules = [{ name: 'no-smtp', action: 'Deny', to: { ports: ['25'] } }];
  assert.match(await apply(policyManifest('rollout', 'trial', { enforcement: 'Report', rules })), /created/);
  assert.match(await apply(policyManifest('rollout', 'plain', { rules })), /created/);
  const column = async (name: string): Promise<string> =>
    (
      await cluster.kubectl(
        'get',
        's4p',
        name,
        '-n',
        'rollout',
        '-o',
        'custom-columns=E:.spec.enforcement',
        '--no-headers',
      )
    ).trim();
  assert.equal(await column('trial'), 'Report');
  assert.equal(await column('plain'), 'Enforce', 'the schema defaults the mode');
  const table = await cluster.kubectl('get', 's4p', '-n', 'rollout');
  assert.match(table, /^trial\s+\S*\s+\S*\s+Report\s/m);
  // What the API server stores validates with the proxy's own code.
  const stored = JSON.parse(await cluster.kubectl('get', 's4p', 'trial', '-n', 'rollout', '-o', 'json'));
  assert.deepEqual(validatePolicy(stored), []);
  assert.match(await apply(policyManifest('rollout', 'trial', { enforcement: 'Enforce', rules })), /configured/);
  assert.equal(await column('trial'), 'Enforce');
});

test('a mode that is neither Enforce nor Report is refused, naming spec.enforcement and the allowed values', async () => {
  const doc = policyManifest('default', 'dry-run', { enforcement: 'report', rules: [{ name: 'r', action: 'Deny' }] });
  const error = await apply(doc).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.match(
    error ?? 'accepted',
    /spec\.enforcement: Unsupported value: "report": supported values: "Enforce", "Report"/,
  );
  assert.notDeepEqual(validatePolicy(doc), []);
});
