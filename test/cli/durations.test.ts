// Durations: one table (src/cli/durations.ts) that the flags, --help and the chart read. `0` is
// off only where the table says off is allowed, and refused elsewhere; a bare number is refused
// with the units it might have meant (it used to be read as milliseconds and cut every client).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseDocument } from 'yaml';
import { parseDuration } from '../../src/cli/args.ts';
import { chartComment, DURATIONS, readDuration, type DurationFlag } from '../../src/cli/durations.ts';
import { repoRoot } from '../helpers/spawn.ts';
import { runMain } from '../helpers/run-main.ts';

delete process.env.REDIS_URL;

const flags = Object.keys(DURATIONS) as DurationFlag[];

test('a bare number is a usage error that suggests units, for every duration flag', () => {
  for (const flag of flags) {
    assert.throws(
      () => readDuration(flag, '10'),
      (error: Error) => {
        assert.equal(error.name, 'UsageError');
        assert.match(error.message, new RegExp(`^--${flag}: "10" has no unit; write 10s or 10ms`));
        return true;
      },
    );
  }
});

test('0 is off exactly where the table allows off, and refused elsewhere', () => {
  for (const flag of flags) {
    if (DURATIONS[flag].off === null) {
      for (const zero of ['0', '0s', '0ms'])
        assert.throws(() => readDuration(flag, zero), /0 is refused/, `${flag} ${zero}`);
    } else {
      assert.equal(readDuration(flag, '0'), 0, flag);
      assert.equal(readDuration(flag, '0s'), 0, flag);
    }
  }
  assert.deepEqual(flags.filter((f) => DURATIONS[f].off !== null).sort(), [
    'drain-grace',
    'idle-timeout',
    'resync',
    'snapshot-warn-interval',
  ]);
});

test('units are read as written, and every default parses under its own rules', () => {
  assert.equal(parseDuration('x', '250ms'), 250);
  assert.equal(parseDuration('x', '1.5s'), 1500);
  assert.equal(parseDuration('x', '2m'), 120_000);
  assert.equal(parseDuration('x', '1h'), 3_600_000);
  assert.throws(() => parseDuration('x', '10 s'), /"10 s" is not a duration \(try 500ms, 10s, 2m, 1h\)/);
  assert.throws(() => readDuration('rules-refresh', '50ms'), /below the minimum of 100ms/);
  for (const flag of flags) assert.doesNotThrow(() => readDuration(flag, undefined), flag);
});

test('the proxy refuses `--handshake-timeout 10` and `--connect-timeout 0` before it starts (exit 2)', async () => {
  for (const [flag, value, message] of [
    ['--handshake-timeout', '10', /--handshake-timeout: "10" has no unit; write 10s or 10ms/],
    ['--connect-timeout', '0', /--connect-timeout: 0 is refused/],
  ] as const) {
    const { code, err } = await runMain(
      'proxy',
      '--policy-file',
      'examples/policy.yaml',
      '--listen',
      '127.0.0.1:0',
      flag,
      value,
    );
    assert.equal(code, 2, err);
    assert.match(err, message);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
  }
});

test("--help shows each flag with the table's default and says where 0 is off", async () => {
  const proxy = (await runMain('proxy', '--help')).out.replace(/\n {20,}/g, ' ');
  for (const flag of [
    'handshake-timeout',
    'connect-timeout',
    'bind-timeout',
    'idle-timeout',
    'ident-timeout',
    'drain-grace',
    'rules-refresh',
    'lease-ttl',
    'snapshot-warn-interval',
  ] as const) {
    const line = proxy.split('\n').find((l) => l.startsWith(`  --${flag} D`));
    assert.ok(line !== undefined, `${flag} missing from proxy --help`);
    assert.ok(line.includes(`default ${DURATIONS[flag].default}`), line);
    assert.equal(line.includes('0 = off'), DURATIONS[flag].off !== null, line);
  }
  const operator = (await runMain('operator', '--help')).out.replace(/\n {20,}/g, ' ');
  assert.match(operator, /--resync D\s+operator: re-check .*\(default 5m; 0 = off/);
  const push = (await runMain('policy', 'push', '--help')).out;
  assert.match(push, /--timeout D\s+policy push: give up on Redis after this \(default 10s; 0 is refused\)/);
});

test("the chart's timeouts: comments and defaults come from the table; the schema refuses 0 where off is not allowed", () => {
  const chart = path.join(repoRoot, 'charts/socks4-fleet');
  const text = readFileSync(path.join(chart, 'values.yaml'), 'utf8');
  const values = parseDocument(text).toJS() as Record<string, Record<string, Record<string, string>>>;
  const schema = JSON.parse(readFileSync(path.join(chart, 'values.schema.json'), 'utf8')) as {
    properties: { proxy: { properties: { timeouts: { properties: Record<string, { $ref: string }> } } } };
    definitions: Record<string, { pattern: string }>;
  };
  const chartFlags = flags.filter((f) => 'chart' in DURATIONS[f]);
  assert.equal(chartFlags.length, 5);
  for (const flag of chartFlags) {
    const key = (DURATIONS[flag] as { chart: string }).chart.split('.').pop() as string;
    assert.equal(values.proxy?.timeouts?.[key], DURATIONS[flag].default, `proxy.timeouts.${key}`);
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith(`    ${key}: `));
    assert.equal(lines[at - 1]?.trim(), chartComment(flag), `comment above proxy.timeouts.${key}`);
    const ref = schema.properties.proxy.properties.timeouts.properties[key]!.$ref.split('/').pop() as string;
    const pattern = new RegExp(schema.definitions[ref]!.pattern);
    assert.equal(pattern.test('0'), DURATIONS[flag].off !== null, `schema for ${key} and "0"`);
    assert.equal(pattern.test('0s'), DURATIONS[flag].off !== null, `schema for ${key} and "0s"`);
    assert.equal(pattern.test('10'), false, `schema for ${key} and a bare number`);
    assert.equal(pattern.test('1.5s'), true, `schema for ${key} and 1.5s`);
  }
});
