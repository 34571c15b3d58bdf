// `make generate` (scripts/generate.ts): every generated file in the tree is what its generator
// makes from its source, and says so in its first lines; a stale one is named with the fix. Then
// the values.schema.json generator's annotation rules, on small inputs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { renderAll } from '../../scripts/generate.ts';
import { findStale, writeGenerated, type GeneratedFile } from '../../scripts/generated.ts';
import { renderValuesSchema } from '../../scripts/gen-values-schema.ts';
import { repoRoot } from '../helpers/spawn.ts';

let scratch: string;
let files: GeneratedFile[];
before(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'generate-test-'));
  files = await renderAll();
});
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('generated files', () => {
  test('every generated file is what its generator makes (else: run make generate)', () => {
    const stale = findStale(repoRoot, files);
    assert.deepEqual(stale, [], `\n${stale.join('\n')}`);
  });

  test('they include both CRDs, the chart schema, the chart copies and the reference', () => {
    const paths = files.map((f) => f.path);
    for (const p of [
      'deploy/crd/socks4policies.yaml',
      'deploy/crd/clustersocks4policies.yaml',
      'charts/socks4-fleet/values.schema.json',
      'charts/socks4-fleet/files/crd/socks4policies.yaml',
      'charts/socks4-fleet/files/crd/clustersocks4policies.yaml',
      'charts/socks4-fleet/files/rbac/operator-clusterrole.yaml',
      'docs/reference.md',
    ])
      assert.ok(paths.includes(p), p);
  });

  test('each says in its first lines that it is generated, by what, and to run make generate', () => {
    for (const file of files) {
      const head = file.path.endsWith('.json')
        ? String((JSON.parse(file.content) as { $comment?: string }).$comment)
        : file.content.split('\n').slice(0, 2).join('\n');
      assert.match(head, /Generated|Copied/, file.path);
      assert.ok(head.includes(file.generator), `${file.path} names ${file.generator}: ${head}`);
      assert.ok(head.includes('make generate'), `${file.path} says make generate: ${head}`);
    }
  });

  test('a stale or missing file is named with "run make generate"; writing repairs exactly those', () => {
    const root = path.join(scratch, 'tree');
    assert.equal(writeGenerated(root, files).length, files.length);
    assert.deepEqual(findStale(root, files), []);
    const crd = path.join(root, 'deploy/crd/socks4policies.yaml');
    writeFileSync(crd, readFileSync(crd, 'utf8').replace('maxItems: 256', 'maxItems: 257'));
    unlinkSync(path.join(root, 'charts/socks4-fleet/files/crd/socks4policies.yaml'));
    assert.deepEqual(findStale(root, files), [
      'deploy/crd/socks4policies.yaml is stale (made by scripts/gen-crds.ts): run make generate',
      'charts/socks4-fleet/files/crd/socks4policies.yaml is missing (made by scripts/generate.ts): run make generate',
    ]);
    assert.deepEqual(writeGenerated(root, files), [
      'deploy/crd/socks4policies.yaml',
      'charts/socks4-fleet/files/crd/socks4policies.yaml',
    ]);
    assert.deepEqual(findStale(root, files), []);
  });

  test('node scripts/generate.ts --check passes on this tree', async () => {
    await promisify(execFile)(process.execPath, [path.join(repoRoot, 'scripts/generate.ts'), '--check'], {
      cwd: repoRoot,
    }).catch((error: { stderr?: string }) => assert.fail(error.stderr));
  });
});

describe('values.schema.json from annotated values.yaml', () => {
  const DEFINITIONS =
    '$schema: http://json-schema.org/draft-07/schema#\ntitle: t\ndefinitions:\n  port: {type: integer, minimum: 1}\n';
  const render = (values: string): Record<string, unknown> => {
    const root = mkdtempSync(path.join(scratch, 'values-'));
    mkdirSync(path.join(root, 'charts/socks4-fleet'), { recursive: true });
    writeFileSync(path.join(root, 'charts/socks4-fleet/values.yaml'), values);
    writeFileSync(path.join(root, 'charts/socks4-fleet/values.schema.definitions.yaml'), DEFINITIONS);
    return JSON.parse(renderValuesSchema(root).content) as Record<string, unknown>;
  };

  test('types come from values, annotations add or replace them, maps are strict, required and descriptions carry over', () => {
    const schema = render(
      [
        '# The file header.',
        '',
        '# -- A name.',
        'name: ""',
        '# @schema {minimum: 1, required: true}',
        '# -- How many.',
        'count: 2',
        '# @schema {enum: [open, closed]}',
        '# -- A mode.',
        'mode: open',
        '# @schema {enum: [auto, true, false]}',
        '# -- Auto or a switch.',
        'elect: auto',
        'section:',
        '  # @schema {$ref: port, required: true}',
        '  # -- A port.',
        '  port: 80',
        '  # @schema {type: [integer, "null"]}',
        '  # -- Maybe.',
        '  maybe: null',
        '',
      ].join('\n'),
    );
    assert.deepEqual(schema.properties, {
      name: { type: 'string', description: 'A name.' },
      count: { type: 'integer', minimum: 1, description: 'How many.' },
      mode: { type: 'string', enum: ['open', 'closed'], description: 'A mode.' },
      elect: { enum: ['auto', true, false], description: 'Auto or a switch.' },
      section: {
        type: 'object',
        additionalProperties: false,
        required: ['port'],
        properties: {
          port: { $ref: '#/definitions/port', description: 'A port.' },
          maybe: { type: ['integer', 'null'], description: 'Maybe.' },
        },
      },
    });
    assert.deepEqual(schema.required, ['count']);
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(schema.definitions, { port: { type: 'integer', minimum: 1 } });
  });

  test('a value that does not say its type, or a broken annotation, is refused naming the key and the fix', () => {
    assert.throws(
      () => render('a:\n  # -- Labels.\n  labels: {}\n'),
      /values\.yaml: a\.labels: its value does not say its type; add a # @schema annotation/,
    );
    assert.throws(
      () => render('# @schema {minimum: 1\n# -- N.\nn: 1\n'),
      /values\.yaml: n: the @schema annotation is not a YAML mapping/,
    );
    assert.throws(
      () => render('# @schema {required: yes please}\n# -- N.\nn: 1\n'),
      /values\.yaml: n: @schema required must be true or false/,
    );
  });
});
