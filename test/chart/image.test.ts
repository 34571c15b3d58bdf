// The container image's recipe (Dockerfile, .dockerignore) against the code it ships and the chart
// that runs it. No Docker engine runs here, so these check what a build would contain: the Node
// version, the user, that every module the CLI loads is copied, that no dev dependency is needed,
// and that the CLI starts from exactly the copied files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import { cleanEnv, repoRoot } from '../helpers/spawn.ts';
import { chartDir } from './tools.ts';

type Stage = { name: string; lines: string[] };

/** The Dockerfile as stages of instructions (continuation lines joined, comments dropped). */
function readDockerfile(): { args: Map<string, string>; stages: Stage[] } {
  const text = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from !== null) stages.push({ name: from[2] ?? `stage${stages.length}`, lines: [line] });
    else if (stages.length === 0 && /^ARG\s+(\w+)=(\S+)/.test(line)) {
      const [, key, value] = /^ARG\s+(\w+)=(\S+)/.exec(line)!;
      args.set(key!, value!);
    } else stages.at(-1)?.lines.push(line);
  }
  return { args, stages };
}

/** Build-context paths the last stage copies (COPY without --from). */
function copiedFromContext(stage: Stage): string[] {
  return stage.lines
    .filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1).filter((word) => !word.startsWith('--')).slice(0, -1));
}

const IMPORT_PATTERNS = [
  /(?:^|\n)\s*import\s+(?!type\s)[^;]*?\bfrom\s+'([^']+)'/g, // import x from '...'
  /(?:^|\n)\s*export\s+(?!type\s)[^;]*?\bfrom\s+'([^']+)'/g, // export { x } from '...'
  /(?:^|\n)\s*import\s+'([^']+)'/g, // import '...'
  /\bimport\(\s*'([^']+)'\s*\)/g, // import('...')
];

/** Every file reachable from `entry` through runtime imports, and the bare specifiers met. */
function importClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  for (let next = queue.pop(); next !== undefined && files.size < 5_000; next = queue.pop()) {
    if (files.has(next)) continue;
    files.add(next);
    const source = readFileSync(next, 'utf8');
    for (const pattern of IMPORT_PATTERNS) {
      for (const match of source.matchAll(pattern)) {
        const specifier = match[1]!;
        if (specifier.startsWith('.')) queue.push(path.resolve(path.dirname(next), specifier));
        else packages.add(specifier);
      }
    }
  }
  return { files, packages };
}

const packageName = (specifier: string): string =>
  specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;

const { args, stages } = readDockerfile();
const runtime = stages.at(-1)!;
const copied = copiedFromContext(runtime);
const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('Dockerfile', () => {
  test('builds on the project\'s pinned Node 24 in every stage', () => {
    const pinned = /^NODE_VERSION=(\S+)/m.exec(readFileSync(path.join(repoRoot, 'scripts/ensure-node.sh'), 'utf8'))?.[1];
    assert.match(pinned ?? '', /^24\./);
    assert.equal(args.get('NODE_IMAGE'), `node:${pinned}-bookworm-slim`);
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const stage of stages) assert.match(stage.lines[0]!, /^FROM \$\{NODE_IMAGE\}/);
  });

  test('installs production dependencies only, from the lockfile', () => {
    const deps = stages.find((stage) => stage.lines.some((line) => /npm ci/.test(line)));
    assert.ok(deps, 'a stage runs npm ci');
    assert.ok(deps.lines.some((line) => /npm ci\b.*--omit=dev/.test(line)));
    assert.ok(!runtime.lines.some((line) => /npm (ci|install)/.test(line)), 'the runtime stage installs nothing');
    assert.ok(runtime.lines.some((line) => new RegExp(`COPY --from=${deps.name}\\b.*node_modules`).test(line)));
  });

  test('runs as the non-root user the chart expects, with the CLI as entry point', () => {
    const user = runtime.lines.filter((line) => /^USER\s/.test(line)).at(-1);
    const [, uid, gid] = /^USER\s+(\d+):(\d+)$/.exec(user ?? '') ?? [];
    assert.ok(uid !== undefined && Number(uid) > 0, `numeric non-root USER, got ${user}`);
    const values = parseDocument(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')).toJS() as {
      podSecurityContext: { runAsUser: number; runAsGroup: number };
      image: { repository: string };
    };
    assert.equal(values.podSecurityContext.runAsUser, Number(uid));
    assert.equal(values.podSecurityContext.runAsGroup, Number(gid));
    assert.ok(runtime.lines.includes('ENTRYPOINT ["node", "/app/src/cli/main.ts"]'));
  });

  test('runs Node with the V8 flags of the launcher a checkout runs (scripts/socks4-fleet)', () => {
    const launcher = readFileSync(path.join(repoRoot, 'scripts', 'socks4-fleet'), 'utf8');
    const flags = /^node_flags=\(([^)]*)\)$/m.exec(launcher)?.[1]?.trim().split(/\s+/);
    assert.ok(flags !== undefined && flags.length > 0, 'the launcher declares node_flags=(...)');
    const env = runtime.lines.filter((line) => /^ENV\s+NODE_OPTIONS=/.test(line)).at(-1);
    assert.deepEqual(env?.replace(/^ENV\s+NODE_OPTIONS=/, '').replace(/^"|"$/g, '').split(/\s+/), flags);
  });

  test('copies every module the CLI can load (proxy and operator), and package.json it reads', () => {
    const roots = copied.map((item) => path.join(repoRoot, item));
    const { files } = importClosure(path.join(repoRoot, 'src/cli/main.ts'));
    assert.ok([...files].some((file) => file.includes(`${path.sep}operator${path.sep}`)), 'the operator is reachable from the CLI');
    const outside = [...files].filter((file) => !roots.some((root) => file === root || file.startsWith(root + path.sep)));
    assert.deepEqual(outside.map((file) => path.relative(repoRoot, file)), []);
    assert.ok(copied.includes('package.json'));
  });

  test('needs no dev dependency at run time', () => {
    const { packages } = importClosure(path.join(repoRoot, 'src/cli/main.ts'));
    const builtins = new Set(builtinModules);
    const needed = [...packages].filter((specifier) => !specifier.startsWith('node:') && !builtins.has(specifier)).map(packageName);
    const missing = [...new Set(needed)].filter((name) => !(name in pkg.dependencies));
    assert.deepEqual(missing, [], `imported at run time but not in dependencies: ${missing.join(', ')}`);
  });

  test('.dockerignore lets in exactly the copied sources', () => {
    const rules = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    assert.equal(rules[0], '*', 'deny by default');
    const allowed = rules.filter((rule) => rule.startsWith('!')).map((rule) => rule.slice(1).replace(/\/$/, ''));
    for (const item of copied) assert.ok(allowed.includes(item.replace(/\/$/, '')), `${item} is copied but ignored`);
    assert.ok(allowed.includes('package-lock.json'), 'npm ci needs the lockfile');
  });
});

describe('the CLI from the image\'s files alone', () => {
  let root: string;
  before(() => {
    // The image's /app: the copied paths, plus node_modules (the import check above keeps it to
    // production packages).
    root = mkdtempSync(path.join(tmpdir(), 'image-layout-'));
    for (const item of copied) cpSync(path.join(repoRoot, item), path.join(root, item), { recursive: true });
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const command of ['proxy', 'operator']) {
    test(`${command} --help`, async () => {
      assert.ok(existsSync(path.join(root, 'src/cli/main.ts')));
      const copy = startCliAt(path.join(root, 'src/cli/main.ts'), [command, '--help']);
      assert.equal(await copy.exited, 0, copy.output());
      assert.match(copy.output(), new RegExp(`Usage: socks4-fleet ${command}`));
    });
  }
});

/** Runs the CLI entry at `entry` (not the repository's) the way the image does: `node <entry>`. */
function startCliAt(entry: string, argv: string[]): { exited: Promise<number | null>; output(): string } {
  const child = spawn(process.execPath, [entry, ...argv], { cwd: path.dirname(entry), env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { exited: new Promise((resolve) => child.once('exit', resolve)), output: () => output };
}
