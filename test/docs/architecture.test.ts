// Docs that name code are checked against the code. docs/architecture.md must name every module
// (every directory and every `.ts` file under src/ and operator/, by its path from the repository
// root), and every path or code name it writes in backticks must exist; README.md and the other
// docs/*.md pages may cite no path that is gone. Moving or renaming a file, or a function the
// architecture page names, fails here until the page follows.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/spawn.ts';

const architecture = readFileSync(path.join(repoRoot, 'docs/architecture.md'), 'utf8');

/** Every file under `dir` (repository-relative), skipping dot-directories and node_modules. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(repoRoot, dir), { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(rel + '/', ...walk(rel));
    else out.push(rel);
  }
  return out;
}

const moduleTree = ['src', 'operator'].flatMap(walk);
const sourceText = ['src', 'operator', 'scripts']
  .flatMap(walk)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => readFileSync(path.join(repoRoot, f), 'utf8'))
  .join('\n');

/** The page without its fenced blocks (shell sessions there name kubectl objects like deploy/x). */
const prose = (markdown: string): string => markdown.replace(/^( *)```[^\n]*\n[\s\S]*?^\1```$/gm, '');

/** Inline code spans outside fenced blocks. */
function codeSpans(markdown: string): string[] {
  return [...prose(markdown).matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
}

const PATH_ROOTS = [
  'src',
  'operator',
  'scripts',
  'test',
  'docs',
  'deploy',
  'charts',
  'mutation',
  'examples',
  'tools',
  'bench',
];
const PATH_RE = new RegExp(`(?<![\\w./-])(?:${PATH_ROOTS.join('|')})/[\\w./-]*[\\w/]`, 'g');

/** Repository paths a page cites, in code spans or in prose: `src/x/y.ts`, test/helpers/. */
function citedPaths(markdown: string): string[] {
  const found = new Set<string>();
  const text = prose(markdown);
  for (const m of text.matchAll(PATH_RE)) {
    const cited = m[0];
    // Globs and placeholders (test/x/*.test.ts, tools/<name>/) name no one file.
    const after = text[(m.index ?? 0) + cited.length];
    if (after === '*' || after === '<' || cited.includes('<')) continue;
    found.add(cited);
  }
  return [...found];
}

/** What a build or a run creates (`bench/results/`): .gitignore lists it, a checkout lacks it. */
const generated = readFileSync(path.join(repoRoot, '.gitignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim().replace(/^\//, ''))
  .filter((l) => l !== '' && !l.includes('*'));

function exists(rel: string): boolean {
  if (generated.some((g) => rel === g || rel.startsWith(g.endsWith('/') ? g : `${g}/`))) return true;
  const full = path.join(repoRoot, rel);
  return existsSync(full) && (!rel.endsWith('/') || statSync(full).isDirectory());
}

/** A code name: an identifier, optionally dotted (`set.report`) or called (`evaluate(set, ctx)`). */
const NAME_RE = /^([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)(?:\(.*\))?(?: [→=].*)?$/;
/** Lower-case words in backticks are mostly values users type (`ready`, `closed`); the rest is code. */
const isCodeName = (name: string): boolean => !/^[a-z]+$/.test(name);

test('docs/architecture.md names every module: each directory and .ts file under src/ and operator/', () => {
  const missing = moduleTree.filter(
    (rel) =>
      (rel.endsWith('/') || rel.endsWith('.ts')) && !architecture.includes(rel.endsWith('/') ? rel : `\`${rel}\``),
  );
  assert.deepEqual(missing, [], `docs/architecture.md does not name: ${missing.join(', ')}`);
});

test('every path docs/architecture.md, README.md and docs/*.md cite exists', () => {
  const pages = [
    'README.md',
    ...readdirSync(path.join(repoRoot, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const gone: string[] = [];
  for (const page of pages) {
    for (const cited of citedPaths(readFileSync(path.join(repoRoot, page), 'utf8')))
      if (!exists(cited)) gone.push(`${page}: ${cited}`);
  }
  assert.deepEqual(gone, [], `cited paths that do not exist:\n${gone.join('\n')}`);
});

test('every code name docs/architecture.md writes in backticks exists in the source', () => {
  const gone: string[] = [];
  for (const span of codeSpans(architecture)) {
    const m = NAME_RE.exec(span.trim());
    if (m === null) continue;
    for (const part of (m[1] as string).split('.')) {
      if (!isCodeName(part)) continue;
      if (!new RegExp(`(?<![\\w$])${part.replace(/\$/g, '\\$')}(?![\\w$])`).test(sourceText))
        gone.push(`${span} (${part})`);
    }
  }
  // Channel names: `session:end` is `socks4-fleet:session:end` in src/telemetry/events.ts.
  for (const span of codeSpans(architecture)) {
    if (/^[a-z]+:[a-z-]+$/.test(span) && !sourceText.includes(`'socks4-fleet:${span}'`))
      gone.push(`${span} (no such channel)`);
  }
  assert.deepEqual(gone, [], `code names that do not exist:\n${gone.join('\n')}`);
});

test('the checks above see what they guard: cited names and paths are found, made-up ones are not', () => {
  assert.deepEqual(codeSpans('a `decideBeforeResolve` b\n  ```ts\n  `inFence`\n  ```\n`x.y`'), [
    'decideBeforeResolve',
    'x.y',
  ]);
  assert.ok(
    citedPaths('see `src/server/session.ts` and test/helpers/ but not test/x/*.test.ts').join() ===
      'src/server/session.ts,test/helpers/',
  );
  assert.equal(exists('src/server/no-such-file.ts'), false);
  assert.ok(
    isCodeName('decideBeforeResolve') && isCodeName('REASON_HELP') && isCodeName('Session') && !isCodeName('closed'),
  );
});
