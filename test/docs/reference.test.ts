// docs/reference.md is generated from the code (scripts/gen-reference.ts; test/generate/ fails
// when the file is stale): here, that it covers what it must. The troubleshooting page covers
// every reason code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { renderReference } from '../../scripts/gen-reference.ts';
import { DURATIONS } from '../../src/cli/durations.ts';
import { Reason } from '../../src/errors.ts';
import { repoRoot } from '../helpers/spawn.ts';

test('the generated reference covers every reason, duration flag, policy field, metric and log line', async () => {
  const generated = await renderReference();
  for (const reason of Object.values(Reason)) assert.ok(generated.includes(`| \`${reason}\` |`), reason);
  for (const flag of Object.keys(DURATIONS)) assert.ok(generated.includes(`| \`--${flag}\` |`), flag);
  for (const field of ['spec.priority', 'spec.rules[].to.ports', 'spec.rules[].limits.bandwidth.key'])
    assert.ok(generated.includes(`| \`${field}\` |`), field);
  assert.match(generated, /\| `socks4_sessions_total` \| proxy \| counter \| command, reply, reason \|/);
  assert.match(generated, /\| info \| session refused \| .*`reason`.*`durationMs`, `closeCause`/);
});

test('the troubleshooting page answers "reply 91: why" for every reason code', () => {
  const page = readFileSync(path.join(repoRoot, 'docs/troubleshooting.md'), 'utf8');
  assert.match(page, /^## Reply 91: how to find out why$/m);
  for (const reason of Object.values(Reason)) {
    if (reason === Reason.BadVersion || reason === Reason.ProxyHeaderInvalid) continue; // no reply at all
    assert.ok(page.includes(`\`${reason}\``), `troubleshooting.md explains ${reason}`);
  }
});

test('the CHANGELOG has an Unreleased section', () => {
  const changelog = readFileSync(path.join(repoRoot, 'CHANGELOG.md'), 'utf8');
  assert.match(changelog, /^## \[Unreleased\]$/m);
});
