// What a new user meets before any product code runs: the Makefile, npm scripts, the Node rule
// and the commands the docs show. Each case is a trap a stranger fell into on a fresh machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanEnv, repoRoot } from '../helpers/spawn.ts';

const read = (file: string): string => readFileSync(path.join(repoRoot, file), 'utf8');

test('make clean, make -n and make help never resolve or fetch Node', () => {
  // A copy of the Makefile and scripts with no .tools/: had the Makefile resolved Node while it
  // was read, ensure-node.sh would install into the copy's .tools/ (or fail without npm).
  const dir = mkdtempSync(path.join(tmpdir(), 'first-run-'));
  try {
    for (const file of ['Makefile', 'package.json', 'package-lock.json'])
      cpSync(path.join(repoRoot, file), path.join(dir, file));
    cpSync(path.join(repoRoot, 'scripts'), path.join(dir, 'scripts'), { recursive: true });
    // A PATH whose `node` and `npm` fail loudly, so any call to them is seen.
    const fakeBin = path.join(dir, 'fake-bin');
    mkdirSync(fakeBin);
    for (const tool of ['node', 'npm']) {
      writeFileSync(path.join(fakeBin, tool), '#!/bin/sh\necho "called $0" >&2\nexit 97\n');
      chmodSync(path.join(fakeBin, tool), 0o755);
    }
    const env = { ...cleanEnv(), PATH: `${fakeBin}:/usr/bin:/bin` };
    for (const args of [['clean'], ['-n', 'test'], ['help'], ['-n', 'bench', 'ARGS=--quick']]) {
      const run = spawnSync('make', ['-C', dir, ...args], { env, encoding: 'utf8' });
      assert.equal(run.status, 0, `make ${args.join(' ')}: ${run.stderr}`);
      assert.doesNotMatch(run.stderr, /called .*(node|npm)/, `make ${args.join(' ')} ran node or npm`);
      assert.equal(existsSync(path.join(dir, '.tools')), false, `make ${args.join(' ')} created .tools/`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('make help says what each clean target removes, and distclean removes bin/', () => {
  const help = execFileSync('make', ['-s', '-C', repoRoot, 'help'], { env: cleanEnv(), encoding: 'utf8' });
  assert.match(help, /make clean\s+remove node_modules\/ \.tools\/ dist\/ bench\/results\//);
  assert.match(help, /make distclean\s+.*bin\//);
  const dry = execFileSync('make', ['-s', '-n', '-C', repoRoot, 'distclean'], { env: cleanEnv(), encoding: 'utf8' });
  assert.match(dry, /rm -rf bin\b/);
});

test('every npm script runs on the project Node by handing over to make', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines?: unknown };
  assert.ok(Object.keys(pkg.scripts).includes('test'));
  for (const [name, command] of Object.entries(pkg.scripts)) {
    assert.match(command, /^make [a-z-]+$/, `npm script "${name}" runs "${command}" on whatever node is on PATH`);
  }
});

test('one Node rule: ensure-node refuses a machine node older than the pinned major', () => {
  const pinned = /^NODE_VERSION=(\d+)\./m.exec(read('scripts/ensure-node.sh'))?.[1];
  assert.equal(pinned, '24');
  // package.json states no second, different rule.
  assert.equal((JSON.parse(read('package.json')) as { engines?: unknown }).engines, undefined);
  // A machine node one major below the pin must not be chosen.
  const dir = mkdtempSync(path.join(tmpdir(), 'old-node-'));
  try {
    writeFileSync(path.join(dir, 'node'), `#!/bin/sh\necho ${Number(pinned) - 1}\n`);
    chmodSync(path.join(dir, 'node'), 0o755);
    const chosen = execFileSync(path.join(repoRoot, 'scripts/ensure-node.sh'), {
      env: { ...cleanEnv(), PATH: `${dir}:/usr/bin:/bin` },
      encoding: 'utf8',
    }).trim();
    assert.notEqual(chosen, dir);
    const version = execFileSync(path.join(chosen, 'node'), ['-p', 'process.versions.node'], {
      env: cleanEnv(),
      encoding: 'utf8',
    });
    assert.ok(Number(version.split('.')[0]) >= Number(pinned), `chose Node ${version}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the docs show no command that needs a newer node than the machine has', () => {
  // `node file.ts` fails on the machine's Node 20 (ERR_UNKNOWN_FILE_EXTENSION); the docs show
  // scripts/node, make or npx socks4-fleet instead.
  for (const doc of ['README.md', 'bench/README.md']) {
    const blocks = [...read(doc).matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const inline = [...read(doc).matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? '');
    for (const line of [...blocks.flatMap((b) => b.split('\n')), ...inline]) {
      assert.doesNotMatch(line.trim(), /^node\s+\S+\.ts\b/, `${doc} shows "${line.trim()}"`);
    }
  }
});

test('scripts/node runs TypeScript on the project Node', () => {
  const out = execFileSync(path.join(repoRoot, 'scripts/node'), ['-e', 'console.log(process.versions.node)'], {
    env: cleanEnv(),
    encoding: 'utf8',
  });
  assert.ok(Number(out.trim().split('.')[0]) >= 24, out);
});
