// `make lint` is what CI runs before the tests: Biome's format check and linter with biome.jsonc.
// These cases run the repository's own configuration on small files in a scratch copy, so a rule
// turned off or a plugin that stops matching is seen here, not after a `.only` reached main.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanEnv, repoRoot } from '../helpers/spawn.ts';

const biome = path.join(repoRoot, 'node_modules/@biomejs/biome/bin/biome');

interface Diagnostic {
  category: string;
  location: { path: string };
}

/** Runs `biome ci` as `make lint` does, on `files` laid out in a scratch copy of the configuration. */
function lintScratch(files: Record<string, string>): { status: number | null; diagnostics: Diagnostic[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'lint-'));
  try {
    for (const file of ['biome.jsonc', '.gitignore', 'scripts/lint']) {
      cpSync(path.join(repoRoot, file), path.join(dir, file), { recursive: true });
    }
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    const run = spawnSync(
      process.execPath,
      [biome, 'ci', '--error-on-warnings', '--colors=off', '--reporter=json', '--max-diagnostics=none', '.'],
      { cwd: dir, env: cleanEnv(), encoding: 'utf8' },
    );
    const report = JSON.parse(run.stdout) as { diagnostics: Diagnostic[] };
    return { status: run.status, diagnostics: report.diagnostics };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const formatted = "import { test } from 'node:test';\n\ntest('serves', () => {});\n";

test('make help lists lint and format, and make lint runs biome ci on the project Node', () => {
  const help = execFileSync('make', ['-s', '-C', repoRoot, 'help'], { env: cleanEnv(), encoding: 'utf8' });
  assert.match(help, /^make lint\s+\S/m);
  assert.match(help, /^make format\s+\S/m);
  const dry = execFileSync('make', ['-s', '-n', '-C', repoRoot, 'lint'], { env: cleanEnv(), encoding: 'utf8' });
  assert.match(dry, /^scripts\/with-node biome ci --error-on-warnings \.$/m);
  // CI lints before the long test run.
  const ci = readFileSync(path.join(repoRoot, '.ci/run'), 'utf8');
  const lintAt = ci.search(/^make lint$/m);
  assert.ok(lintAt > 0 && lintAt < ci.search(/^make test$/m), '.ci/run runs make lint before make test');
});

test('a clean file passes; every way node:test has to focus or skip a test fails', () => {
  assert.deepEqual(lintScratch({ 'test/clean.test.ts': formatted }), { status: 0, diagnostics: [] });
  const focused = {
    'test/a.test.ts': "import { test } from 'node:test';\n\ntest.only('a', () => {});\n",
    'test/b.test.ts': "import { test } from 'node:test';\n\ntest.skip('b', () => {});\n",
    'test/c.test.ts': "import { test } from 'node:test';\n\ntest('c', { only: true }, () => {});\n",
    'test/d.test.ts': "import { test } from 'node:test';\n\ntest('d', { skip: 'flaky' }, () => {});\n",
    'test/e.test.ts': "import { test } from 'node:test';\n\ntest.todo('e');\n",
    'test/f.test.ts': "import { test } from 'node:test';\n\ntest('f', (t) => {\n  t.skip();\n});\n",
  };
  const { status, diagnostics } = lintScratch(focused);
  assert.equal(status, 1);
  const flagged = new Set(diagnostics.map((d) => d.location.path));
  assert.deepEqual([...flagged].sort(), Object.keys(focused).sort());
});

test('the house rules: no any, nothing unused, type-only imports, kebab-case files, exit only in the CLI', () => {
  const { status, diagnostics } = lintScratch({
    'src/any.ts': 'export const parse = (text: string): any => JSON.parse(text);\n',
    'src/unused.ts': "import { readFileSync } from 'node:fs';\n\nexport const two = 2;\n",
    'src/types.ts': "import net from 'node:net';\n\nexport const port = (a: net.AddressInfo): number => a.port;\n",
    'src/parseRequest.ts': 'export const one = 1;\n',
    'src/policy/quit.ts': 'export function quit(): void {\n  process.exit(1);\n}\n',
    'src/cli/main.ts': 'export function quit(): void {\n  process.exit(1);\n}\n',
    'src/unformatted.ts': 'export const a = {b: 1}\n',
  });
  assert.equal(status, 1);
  const found = diagnostics.map((d) => `${d.location.path} ${d.category}`).sort();
  assert.deepEqual(found, [
    'src/any.ts lint/suspicious/noExplicitAny',
    'src/parseRequest.ts lint/style/useFilenamingConvention',
    'src/policy/quit.ts lint/nursery/noProcessExit',
    'src/types.ts lint/style/useImportType',
    'src/unformatted.ts format',
    'src/unused.ts lint/correctness/noUnusedImports',
  ]);
});
