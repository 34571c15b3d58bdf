// `socks4-fleet policy push`, run through the CLI entry point against a real redis-server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { parseSnapshotDocument } from '../../src/rules/snapshot-document.ts';
import { findFreePort, startRedis } from '../helpers/redis.ts';
import { decide, policyYaml } from '../rules/rule-source-contract.ts';
import { runMain } from '../helpers/run-main.ts';

const redis = await startRedis();
const dir = mkdtempSync(path.join(tmpdir(), 'socks4-push-'));
const client = createRedisClient({ url: redis.url });
after(async () => {
  await closeRedisClient(client);
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});
assert.ok(await waitForReady(client, 5000));

// main() reads process.env: these cases describe the CLI with no REDIS_URL in its environment.
delete process.env.REDIS_URL;

function file(text: string): string {
  const name = path.join(dir, `${randomUUID()}.yaml`);
  writeFileSync(name, text);
  return name;
}

describe('socks4-fleet policy push', () => {
  it('prints help', async () => {
    const { code, out } = await runMain('policy', 'push', '--help');
    assert.equal(code, 0);
    assert.match(out, /Usage: socks4-fleet policy push FILE \(--redis-url URL \| env REDIS_URL\)/);
    assert.match(out, /--redis-sentinels/);
  });

  it('publishes a valid file, then reports it unchanged, then publishes a change', async () => {
    const prefix = `push-${randomUUID().slice(0, 8)}`;
    const keys = ruleKeys(prefix);
    const first = await runMain(
      'policy',
      'push',
      file(policyYaml(443, { rules: 2 })),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(first.code, 0, first.err);
    const version = (await client.get(keys.pointer)) as string;
    assert.match(
      first.out,
      new RegExp(`^published ${version} \\(1 policies, 2 rules\\) to ${prefix}; previous none\\n$`),
    );
    const stored = parseSnapshotDocument((await client.get(keys.snapshot(version))) as string, version);
    assert.equal(stored.document.source, 'policy push');
    assert.equal(decide(stored.snapshot, 444), 'allow:proxies/office/rule-1');
    assert.equal(await client.pttl(keys.snapshot(version)), -1, 'the current snapshot never expires');

    const again = await runMain(
      'policy',
      'push',
      file(policyYaml(443, { rules: 2 })),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(again.code, 0);
    assert.match(again.out, /^unchanged /);

    const changed = await runMain(
      'policy',
      'push',
      file(policyYaml(80)),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(changed.code, 0, changed.err);
    assert.match(changed.out, new RegExp(`previous ${version}\\n$`));
    const ttl = await client.pttl(keys.snapshot(version));
    assert.ok(ttl > 0 && ttl <= 10 * 60_000, `the replaced snapshot expires later (pttl ${ttl})`);
  });

  it('refuses an invalid file, printing every problem, and leaves Redis alone', async () => {
    const prefix = `bad-${randomUUID().slice(0, 8)}`;
    const bad = policyYaml(443).replace('action: Allow', 'action: Maybe').replace('"443"', '"70000"');
    const { code, err } = await runMain(
      'policy',
      'push',
      file(bad),
      '--redis-url',
      redis.url,
      '--redis-prefix',
      prefix,
    );
    assert.equal(code, 1);
    assert.match(err, /spec\.rules\[0\]\.action/);
    assert.match(err, /spec\.rules\[0\]\.to\.ports\[0\]/);
    assert.match(err, /not pushed: 2 problems/);
    assert.equal(await client.exists(ruleKeys(prefix).pointer), 0);
  });

  it('fails with exit 1 and a clear message when Redis cannot be reached', async () => {
    const port = await findFreePort();
    const started = Date.now();
    const { code, err } = await runMain(
      'policy',
      'push',
      file(policyYaml(443)),
      '--redis-url',
      `redis://u:secret@127.0.0.1:${port}`,
      '--timeout',
      '300ms',
    );
    assert.equal(code, 1);
    assert.match(err, /not pushed: Redis at redis:\/\/u:\*\*\*@127\.0\.0\.1:\d+: connection refused/);
    assert.doesNotMatch(err, /secret/);
    assert.ok(Date.now() - started < 3000);
  });

  it('treats a missing FILE, a missing --redis-url or a bad prefix as usage errors', async () => {
    assert.equal((await runMain('policy', 'push', '--redis-url', redis.url)).code, 2);
    assert.equal((await runMain('policy', 'push', file(policyYaml(1)))).code, 2);
    const bad = await runMain('policy', 'push', file(policyYaml(1)), '--redis-url', redis.url, '--redis-prefix', 'a b');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--redis-prefix/);
    const missing = await runMain('policy', 'push', path.join(dir, 'nope.yaml'), '--redis-url', redis.url);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read/);
  });
});
