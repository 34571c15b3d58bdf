// The layout shows the architecture: every import in src/ and operator/ points down the layers
// (STYLE.md: pure cores, I/O at the edges, telemetry listens, a folder does one job). Issue #17
// moved the limit internals, the snapshot document and publishing, the Redis flags and the fleet
// wiring out of src/redis/; these rules keep them from drifting back. The imports are read from the
// source text (type-only imports count: they are a dependency on the other module's vocabulary).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Import {
  readonly specifier: string;
  /** Named bindings, or '*' when the whole module is bound (default, namespace, side effect, dynamic). */
  readonly names: readonly string[] | '*';
  readonly line: number;
}

// Statements start a line in this codebase, so a match at a line start is never inside a comment.
// The clause may span lines (long named lists) but holds no `;`, `=`, parentheses or quotes, so a
// match cannot run on into code.
const STATIC = /^(?:import|export)\s+(?:type\s+)?([^;=()'"]*?)\s*from\s*(['"])([^'"]+)\2/gm;
const SIDE_EFFECT = /^import\s*(['"])([^'"]+)\1/gm;
const DYNAMIC = /\bimport\(\s*(['"])([^'"]+)\1\s*\)/g;

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function bindingNames(clause: string): readonly string[] | '*' {
  const braces = /\{([^}]*)\}/.exec(clause);
  const outside = clause
    .replace(/\{[^}]*\}/, '')
    .replace(/,/g, ' ')
    .trim();
  if (braces === null || outside !== '') return '*'; // a default or namespace binding takes it all
  return braces[1]!
    .split(',')
    .map((part) =>
      part
        .replace(/^\s*type\s+/, '')
        .replace(/\s+as\s+.*$/s, '')
        .trim(),
    )
    .filter((name) => name !== '');
}

function readImports(text: string): Import[] {
  const found: Import[] = [];
  for (const m of text.matchAll(STATIC))
    found.push({ specifier: m[3]!, names: bindingNames(m[1]!), line: lineAt(text, m.index) });
  for (const m of text.matchAll(SIDE_EFFECT)) found.push({ specifier: m[2]!, names: '*', line: lineAt(text, m.index) });
  for (const m of text.matchAll(DYNAMIC)) {
    const start = text.lastIndexOf('\n', m.index) + 1;
    if (/^\s*(\/\/|\*|\/\*)/.test(text.slice(start, m.index))) continue; // in a comment
    found.push({ specifier: m[2]!, names: '*', line: lineAt(text, m.index) });
  }
  return found.sort((a, b) => a.line - b.line);
}

/**
 * What each module may import, lowest layer first. `core` is the files directly in src/ (the
 * reason registry and its help). A module not listed fails the scan: place it in the layers.
 */
const MAY_IMPORT: Record<string, { readonly may: readonly string[]; readonly why: string }> = {
  core: { may: ['core'], why: 'the reason registry is the bottom layer' },
  protocol: {
    may: ['core', 'policy'],
    why: 'the codec is pure: bytes in, typed values out (IPv4 text through the one parser, policy/ip.ts)',
  },
  policy: { may: ['core'], why: 'the policy engine is pure: compile and evaluate take everything as arguments' },
  telemetry: {
    may: ['core', 'protocol', 'policy'],
    why: 'telemetry listens to events; it never reaches into what announces them',
  },
  redis: {
    may: ['core'],
    why: 'src/redis/ is the connection alone; the code that uses Redis lives with its owner (limits/, rules/, cli/)',
  },
  ops: { may: ['core', 'telemetry'], why: 'the ops server only serves health and metrics' },
  limits: {
    may: ['core', 'policy', 'telemetry', 'redis'],
    why: 'limiters sit beside the rule sources, below the server',
  },
  rules: {
    may: ['core', 'policy', 'telemetry', 'redis'],
    why: 'rule sources sit beside the limiters, below the server',
  },
  server: {
    may: ['core', 'protocol', 'policy', 'telemetry', 'redis', 'limits', 'rules'],
    why: 'the server is composed by the CLI, never the other way',
  },
  cli: {
    may: ['core', 'protocol', 'policy', 'telemetry', 'redis', 'ops', 'limits', 'rules', 'server', 'operator'],
    why: 'the CLI composes everything',
  },
  operator: {
    may: ['core', 'protocol', 'policy', 'telemetry', 'redis', 'ops', 'limits', 'rules', 'server', 'cli'],
    why: 'the operator command composes like the CLI',
  },
};

/** The modules with no I/O: the registry, the codec and the policy engine. */
const PURE_MODULES = new Set(['core', 'protocol', 'policy']);

/** Packages the pure cores may use: no sockets, files, timers or processes behind them. */
const PURE_PACKAGES: Record<string, readonly string[] | '*'> = {
  'node:buffer': '*',
  'node:url': '*', // domainToASCII for SOCKS4a names
  yaml: '*', // policy text → documents; the caller reads the file
  'node:net': ['isIP', 'isIPv4', 'isIPv6', 'SocketAddress', 'BlockList'], // address parsing only
};

function moduleOf(file: string): string {
  const parts = file.split('/');
  if (parts[0] === 'operator') return 'operator';
  return parts.length === 2 ? 'core' : parts[1]!;
}

function listTs(dir: string): string[] {
  return readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => `${dir}/${name.split(path.sep).join('/')}`)
    .sort();
}

interface Edge {
  readonly from: string;
  readonly fromModule: string;
  readonly line: number;
  readonly specifier: string;
  readonly names: readonly string[] | '*';
  /** Repository path of the imported file, or null for a package. */
  readonly target: string | null;
  /** The imported module, or `pkg:<name>`. */
  readonly toModule: string;
}

function scan(): Edge[] {
  const edges: Edge[] = [];
  for (const file of [...listTs('src'), ...listTs('operator')]) {
    for (const imp of readImports(readFileSync(path.join(root, file), 'utf8'))) {
      const relative = imp.specifier.startsWith('.');
      const target = relative ? path.posix.normalize(path.posix.join(path.posix.dirname(file), imp.specifier)) : null;
      edges.push({
        from: file,
        fromModule: moduleOf(file),
        line: imp.line,
        specifier: imp.specifier,
        names: imp.names,
        target,
        toModule: target === null ? `pkg:${imp.specifier}` : moduleOf(target),
      });
    }
  }
  return edges;
}

const where = (e: Edge): string => `${e.from}:${e.line} imports '${e.specifier}'`;

const edges = scan();

describe('the import reader', () => {
  test('reads named, type-only, multi-line, default, re-export, side-effect and dynamic imports', () => {
    const text = [
      "import { a, type B, c as d } from './x.ts';",
      "import type { E } from '../y.ts';",
      'import {',
      '  f,',
      '  g,',
      "} from 'pkg';",
      "import net, { type Socket } from 'node:net';",
      "import * as ns from './ns.ts';",
      "export { h } from './h.ts';",
      "export * from './all.ts';",
      "import './side.ts';",
      "const m = await import('./lazy.ts');",
      "// a comment naming import('./not-an-import.ts') and: import { z } from './nor-this.ts';",
      'const s = \'data from "./nothing.ts"\';',
    ].join('\n');
    assert.deepEqual(
      readImports(text).map((i) => [i.line, i.specifier, i.names]),
      [
        [1, './x.ts', ['a', 'B', 'c']],
        [2, '../y.ts', ['E']],
        [3, 'pkg', ['f', 'g']],
        [7, 'node:net', '*'],
        [8, './ns.ts', '*'],
        [9, './h.ts', ['h']],
        [10, './all.ts', '*'],
        [11, './side.ts', '*'],
        [12, './lazy.ts', '*'],
      ],
    );
  });

  test('finds the imports of the whole tree (so the rules below cannot pass on an empty scan)', () => {
    assert.ok(edges.length > 300, `only ${edges.length} imports read`);
    const has = (from: string, target: string) => edges.some((e) => e.from === from && e.target === target);
    assert.ok(has('src/limits/redis-limiter.ts', 'src/redis/connection.ts'));
    assert.ok(has('src/cli/main.ts', 'operator/command.ts'), 'the dynamic import of the operator command');
    assert.ok(edges.some((e) => e.from === 'src/protocol/proxy-protocol.ts' && e.toModule === 'pkg:node:net'));
  });
});

describe('layering', () => {
  test('every module of src/ and operator/ has a place in the layers', () => {
    const unplaced = [...new Set(edges.map((e) => e.fromModule))].filter((m) => MAY_IMPORT[m] === undefined);
    if (unplaced.length > 0)
      assert.fail(
        `modules with no entry in MAY_IMPORT (test/layout/imports.test.ts): ${unplaced.join(', ')}; add each with what it may import`,
      );
  });

  test('src/redis/ is the connection alone: it imports nothing from the modules that use it', () => {
    const upward = edges.filter(
      (e) => e.fromModule === 'redis' && e.target !== null && e.toModule !== 'redis' && e.toModule !== 'core',
    );
    if (upward.length > 0) assert.fail(`${MAY_IMPORT.redis!.why}:\n${upward.map(where).join('\n')}`);
  });

  test('the pure cores (protocol, policy) use no I/O and import nothing above them', () => {
    const problems: string[] = [];
    for (const e of edges.filter((x) => x.fromModule === 'protocol' || x.fromModule === 'policy')) {
      if (e.target === null) {
        const allowed = PURE_PACKAGES[e.specifier];
        const extra =
          allowed === undefined
            ? e.names
            : allowed === '*'
              ? []
              : e.names === '*'
                ? '*'
                : e.names.filter((n) => !allowed.includes(n));
        if (extra === '*' || extra.length > 0) {
          problems.push(
            `${where(e)}${extra === '*' ? '' : ` (${extra.join(', ')})`}: ${e.fromModule} is pure; I/O belongs at the edges (server/, rules/, limits/, cli/)`,
          );
        }
      } else if (!PURE_MODULES.has(e.toModule)) {
        problems.push(
          `${where(e)}: ${e.fromModule} is pure and may import only src/errors.ts and the pure modules (${[...PURE_MODULES].join(', ')})`,
        );
      }
    }
    if (problems.length > 0) assert.fail(problems.join('\n'));
  });

  test('only the CLI and the operator import src/cli/', () => {
    const intoCli = edges.filter((e) => e.toModule === 'cli' && e.fromModule !== 'cli' && e.fromModule !== 'operator');
    if (intoCli.length > 0)
      assert.fail(`src/cli/ is the top of the stack; move what these need below it:\n${intoCli.map(where).join('\n')}`);
  });

  test('every import in src/ and operator/ points down the layers', () => {
    const problems: string[] = [];
    for (const e of edges) {
      const rule = MAY_IMPORT[e.fromModule];
      if (rule === undefined || e.target === null || e.toModule === e.fromModule) continue;
      if (!rule.may.includes(e.toModule))
        problems.push(
          `${where(e)} (${e.toModule}/): ${e.fromModule}/ may import only ${rule.may.join(', ')} — ${rule.why}`,
        );
    }
    if (problems.length > 0) assert.fail(problems.join('\n'));
  });
});
