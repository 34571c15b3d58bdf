// `policy explain --redis-url` and `policy diff` against a real redis-server: the rules are
// pushed with `policy push` (the fleet's own publish path) and read back the way pods read them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { runCli } from '../helpers/fleet.ts';
import { startRedis } from '../helpers/redis.ts';
import { runMain } from '../helpers/run-main.ts';

const redis = await startRedis();
const dir = mkdtempSync(path.join(tmpdir(), 'socks4-explain-diff-'));
after(async () => {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

// main() reads process.env: these cases describe the CLI with no REDIS_URL in its environment.
delete process.env.REDIS_URL;

function file(text: string): string {
  const name = path.join(dir, `${randomUUID()}.yaml`);
  writeFileSync(name, text);
  return name;
}

const trial = (enforcement: string, extra = ''): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: trial, namespace: proxies}
spec:
  priority: 10
  enforcement: ${enforcement}
  rules:
    - {name: no-smtp, action: Deny, to: {ports: ["25"]}}
${extra}`;

const office = (webPorts: string, extraRule = ''): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: office, namespace: proxies}
spec:
  rules:
    - {name: web, action: Allow, to: {ports: [${webPorts}]}}
    - {name: mail, action: Allow, to: {ports: ["25"]}}
${extraRule}
`;

async function push(prefix: string, text: string): Promise<string> {
  const pushed = await runMain('policy', 'push', file(text), '--redis-url', redis.url, '--redis-prefix', prefix);
  assert.equal(pushed.code, 0, pushed.err);
  return /published ([0-9a-f]{12})/.exec(pushed.out)?.[1] as string;
}

describe('socks4-fleet policy explain --redis-url', () => {
  it('explains against the live snapshot: version and age, Report policies marked and recorded', async () => {
    const prefix = `explain-${randomUUID().slice(0, 8)}`;
    const version = await push(prefix, `${trial('Report')}---${office('"443"')}`);
    const { code, out, err } = await runMain(
      'policy',
      'explain',
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--src',
      '10.0.0.1',
      '--dst',
      '93.184.216.34:25',
    );
    assert.equal(code, 0, err);
    const lines = out.trimEnd().split('\n');
    assert.match(
      lines[0] as string,
      new RegExp(
        `^snapshot: ${version} under prefix "${prefix}" \\(published \\S+Z, \\d+s ago by policy push\\); 2 policies, 3 rules, 1 in Report mode$`,
      ),
    );
    assert.ok(lines.includes('decision: ALLOW'), out);
    assert.ok(lines.includes('rule:     proxies/office rule mail'), out);
    assert.ok(
      lines.includes('report:   DENY (RuleDenied) by proxies/trial rule no-smtp [Report]: recorded, not enforced'),
      out,
    );
    assert.ok(
      lines.includes(
        '  match proxies/trial rule no-smtp (Deny) [Report]: would deny (RuleDenied); recorded, not enforced, evaluation goes on',
      ),
      out,
    );
    assert.ok(lines.includes('  skip  proxies/office rule web (Allow): port 25 is not in [443]'), out);
    assert.ok(lines.includes('  match proxies/office rule mail (Allow)'), out);
  });

  it('after the switch to Enforce the live rules refuse, and no Report line is printed', async () => {
    const prefix = `explain-${randomUUID().slice(0, 8)}`;
    await push(prefix, `${trial('Enforce')}---${office('"443"')}`);
    const { code, out } = await runMain(
      'policy',
      'explain',
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
      '--src',
      '10.0.0.1',
      '--dst',
      '93.184.216.34:25',
    );
    assert.equal(code, 0);
    assert.match(out, /^decision: DENY$/m);
    assert.match(out, /^rule: {5}proxies\/trial rule no-smtp$/m);
    assert.doesNotMatch(out, /report:|\[Report\]|in Report mode/);
  });

  it('says which prefix holds nothing, in one line, exit 1', async () => {
    const { code, out, err } = await runMain(
      'policy',
      'explain',
      '--redis-url',
      redis.url,
      '--redis-prefix',
      'nothing-here',
      '--src',
      '10.0.0.1',
      '--dst',
      '10.0.0.2:80',
    );
    assert.equal(code, 1);
    assert.equal(out, '');
    assert.match(
      err,
      /^no rules are published under prefix "nothing-here" \(.*:current is empty\): check --redis-prefix, or publish with "socks4-fleet policy push" or the operator\n$/,
    );
  });

  it('refuses FILE together with --redis-url, and neither', async () => {
    const both = await runMain(
      'policy',
      'explain',
      file(office('"443"')),
      '--redis-url',
      redis.url,
      '--src',
      '10.0.0.1',
      '--dst',
      '10.0.0.2:80',
    );
    assert.equal(both.code, 2);
    assert.match(both.err, /give FILE or --redis-url, not both/);
    const neither = await runMain('policy', 'explain', '--src', '10.0.0.1', '--dst', '10.0.0.2:80');
    assert.equal(neither.code, 2);
    assert.match(neither.err, /expected a policy FILE, or --redis-url URL \(or env REDIS_URL\)/);
  });

  it('an unreachable Redis is one line, not a stack trace', async () => {
    const { code, err } = await runMain(
      'policy',
      'explain',
      '--redis-url',
      'redis://127.0.0.1:1',
      '--timeout',
      '300ms',
      '--src',
      '10.0.0.1',
      '--dst',
      '10.0.0.2:80',
    );
    assert.equal(code, 1);
    assert.equal(err, 'cannot reach Redis at redis://127.0.0.1:1 within 300ms\n');
  });
});

describe('socks4-fleet policy diff', () => {
  it('lists policies and rules added, removed and changed; exit 1', async () => {
    const prefix = `diff-${randomUUID().slice(0, 8)}`;
    const live = await push(prefix, `${trial('Report')}---${office('"443"')}`);
    const next = `${trial('Enforce')}---${office('"443", "8443"', '    - {name: ssh, action: Deny, to: {ports: ["22"]}}')}---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: lab, namespace: proxies}
spec:
  rules:
    - {name: all, action: Allow}
`;
    const { code, out, err } = await runMain(
      'policy',
      'diff',
      file(next),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(code, 1, err);
    const lines = out.trimEnd().split('\n');
    assert.match(
      lines[0] as string,
      new RegExp(
        `^live: {5}${live} under prefix "${prefix}" \\(published .* by policy push\\); 2 policies, 3 rules, 1 in Report mode$`,
      ),
    );
    assert.match(lines[1] as string, /: would publish [0-9a-f]{12}$/);
    assert.deepEqual(lines.slice(2), [
      '+ policy proxies/lab (priority 1000, Enforce, 1 rule)',
      '    + rule all (Allow)',
      '~ policy proxies/office',
      '    ~ rule web',
      '        to: {"ports":["443"]} -> {"ports":["443","8443"]}',
      '    + rule ssh (Deny)',
      '~ policy proxies/trial',
      '    enforcement: "Report" -> "Enforce"',
      '1 added, 0 removed, 2 changed',
    ]);
    // Nothing was written: the live pointer is where it was.
    const client = createRedisClient({ url: redis.url });
    try {
      assert.ok(await waitForReady(client, 5000));
      assert.equal(await client.get(ruleKeys(prefix).pointer), live);
    } finally {
      await closeRedisClient(client);
    }
  });

  it('shows removals and rule order; the same rules are "no changes", exit 0', async () => {
    const prefix = `diff-${randomUUID().slice(0, 8)}`;
    await push(prefix, `${trial('Report')}---${office('"443"')}`);
    const reordered = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: office, namespace: proxies}
spec:
  priority: 1000
  rules:
    - {name: mail, action: Allow, to: {ports: ["25"]}}
    - {name: web, action: Allow, ident: "Off", to: {ports: ["443"]}}
`;
    const changed = await runMain(
      'policy',
      'diff',
      file(reordered),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(changed.code, 1, changed.err);
    assert.deepEqual(changed.out.trimEnd().split('\n').slice(2), [
      '~ policy proxies/office',
      '    rule order: web, mail -> mail, web',
      '- policy proxies/trial (priority 10, Report, 1 rule)',
      '    - rule no-smtp (Deny)',
      '0 added, 1 removed, 1 changed',
    ]);
    // Defaults written out (`enforcement: Enforce`, priority 1000) are the same rules.
    const same = await runMain(
      'policy',
      'diff',
      file(
        `${trial('Report')}---${office('"443"').replace('spec:', 'spec:\n  enforcement: Enforce\n  priority: 1000')}`,
      ),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(same.code, 0, same.out + same.err);
    assert.match(same.out, /\nno changes: the fleet already enforces these rules\n$/);
  });

  it('an invalid FILE is named field by field and nothing is compared (exit 2)', async () => {
    const { code, out, err } = await runMain('policy', 'diff', file(trial('report')), '--redis-url', redis.url);
    assert.equal(code, 2);
    assert.equal(out, '');
    assert.match(
      err,
      /^proxies\/trial: spec\.enforcement: must be one of Enforce, Report, got "report"\nnot compared: 1 problem in /,
    );
  });

  it('the real CLI lists diff and the new explain flags in --help', async () => {
    const top = await runCli(['--help']);
    assert.match(top.out, /policy diff FILE \.\.\. +show what a push would change/);
    const diff = await runCli(['policy', 'diff', '--help']);
    assert.equal(diff.code, 0);
    assert.match(diff.out, /^Usage: socks4-fleet policy diff FILE \(--redis-url URL \| env REDIS_URL\)/);
    const explain = await runCli(['policy', 'explain', '--help']);
    assert.match(explain.out, /^Usage: socks4-fleet policy explain \(FILE \| --redis-url URL\)/);
    assert.match(explain.out, /--redis-prefix P/);
  });
});
