// Redis mistakes said at once, with the server's address and never the password, against a real
// redis-server with requirepass and an ACL user: no password (NOAUTH), a wrong password or ACL
// user (WRONGPASS), TLS to a plain server, a refused connection, a database that does not exist
// (`/99` used to publish into database 0 and say "published"). And the silent states: a proxy
// with no snapshot warns, naming the masked URL, the prefix and the prefixes that do hold rules.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { main } from '../../src/cli/main.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { describeRedisError } from '../../src/redis/problems.ts';
import { findFreePort, startRedis } from '../helpers/redis.ts';
import { runCli, startCli } from '../helpers/spawn.ts';
import { policyYaml } from '../rules/rule-source-contract.ts';

const PASSWORD = 'sekret-Pa55';
const ACL_PASSWORD = 'bob-Pa55';
const redis = await startRedis([
  '--requirepass',
  PASSWORD,
  '--user',
  'bob',
  'on',
  `>${ACL_PASSWORD}`,
  '~*',
  '&*',
  '+@all',
]);
const dir = mkdtempSync(path.join(tmpdir(), 'socks4-redis-errors-'));
const good = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`;
const admin = createRedisClient({ url: good });
after(async () => {
  await closeRedisClient(admin);
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});
assert.ok(await waitForReady(admin, 5000));
delete process.env.REDIS_URL;

const policyFile = path.join(dir, 'policy.yaml');
writeFileSync(policyFile, policyYaml(443));

async function push(url: string, ...extra: string[]): Promise<{ code: number; out: string; err: string; ms: number }> {
  let out = '';
  let err = '';
  const started = Date.now();
  const code = await main(['policy', 'push', policyFile, '--redis-url', url, '--timeout', '3s', ...extra], {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
  });
  return { code, out, err, ms: Date.now() - started };
}

function assertNoSecrets(text: string): void {
  assert.doesNotMatch(text, new RegExp(PASSWORD), 'the password is never printed');
  assert.doesNotMatch(text, new RegExp(ACL_PASSWORD), 'the ACL password is never printed');
}

describe('policy push names the cause at once', () => {
  const cases: [string, () => string, RegExp][] = [
    [
      'no password',
      () => `redis://127.0.0.1:${redis.port}`,
      /Redis at redis:\/\/127\.0\.0\.1:\d+: the server requires a password \(NOAUTH\)/,
    ],
    [
      'a wrong password',
      () => `redis://:wrong@127.0.0.1:${redis.port}`,
      /Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: authentication failed \(WRONGPASS/,
    ],
    [
      'a wrong ACL user',
      () => `redis://eve:${ACL_PASSWORD}@127.0.0.1:${redis.port}`,
      /Redis at redis:\/\/eve:\*\*\*@127\.0\.0\.1:\d+: authentication failed \(WRONGPASS/,
    ],
    ['a database that does not exist', () => `${good}/99`, /database 99 does not exist on this server/],
  ];
  for (const [what, url, message] of cases) {
    it(`${what}: exit 1, the cause and the host, well before the timeout`, async () => {
      const { code, out, err, ms } = await push(url());
      assert.equal(code, 1, out + err);
      assert.match(err, /^not pushed: /);
      assert.match(err, message);
      assertNoSecrets(out + err);
      assert.ok(ms < 2500, `took ${ms} ms of a 3s timeout`);
    });
  }

  it('a database that does not exist writes nothing into database 0', async () => {
    const prefix = `db99-${randomUUID().slice(0, 8)}`;
    assert.equal((await push(`${good}/99`, '--redis-prefix', prefix)).code, 1);
    assert.equal(await admin.exists(ruleKeys(prefix).pointer), 0);
  });

  it('TLS to a plain server says TLS and how to fix the URL', async () => {
    const { code, err } = await push(`rediss://:${PASSWORD}@127.0.0.1:${redis.port}`, '--timeout', '1s');
    assert.equal(code, 1);
    assert.match(
      err,
      /Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+: TLS failed .*use redis:\/\/ instead of rediss:\/\//,
    );
    assertNoSecrets(err);
  });

  it('a refused connection is said at once', async () => {
    const port = await findFreePort();
    const { code, err, ms } = await push(`redis://:${PASSWORD}@127.0.0.1:${port}`);
    assert.equal(code, 1);
    assert.match(err, new RegExp(`Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: connection refused`));
    assert.ok(ms < 2500, `took ${ms} ms`);
  });

  it('the right ACL user and password publish', async () => {
    const { code, out, err } = await push(
      `redis://bob:${ACL_PASSWORD}@127.0.0.1:${redis.port}`,
      '--redis-prefix',
      `ok-${randomUUID().slice(0, 8)}`,
    );
    assert.equal(code, 0, err);
    assert.match(out, /^published /);
  });

  it("a name that does not resolve is called that (getaddrinfo's error, no lookup made here)", () => {
    const error = Object.assign(new Error('getaddrinfo ENOTFOUND redis.nowhere'), { code: 'ENOTFOUND' });
    const problem = describeRedisError(error, { url: `redis://:${PASSWORD}@redis.nowhere:6379`, tls: false, db: 0 });
    assert.equal(
      problem.message,
      'Redis at redis://:***@redis.nowhere:6379: host name not found (DNS); check the host in the URL',
    );
    assert.equal(problem.fatal, true);
  });
});

describe('the proxy in fleet mode', () => {
  it('a wrong password stops start-up with one line naming the host (exit 1), not a retry loop', async () => {
    const { code, output } = await runCli(['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0'], {
      REDIS_URL: `redis://:wrong@127.0.0.1:${redis.port}`,
    });
    assert.equal(code, 1, output);
    assert.match(
      output,
      /socks4-fleet proxy: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: authentication failed \(WRONGPASS.*; not started$/m,
    );
    assertNoSecrets(output);
  });

  it("a database that does not exist stops start-up instead of serving database 0's rules", async () => {
    const { code, output } = await runCli(['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0'], {
      REDIS_URL: `${good}/99`,
    });
    assert.equal(code, 1, output);
    assert.match(
      output,
      /socks4-fleet proxy: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/99: database 99 does not exist on this server.*; not started$/m,
    );
    assertNoSecrets(output);
  });

  it('with no snapshot under its prefix: says where rules come from, warns at start and again, naming the prefixes that hold rules', async () => {
    const chartPrefix = `release-${randomUUID().slice(0, 8)}`;
    assert.equal((await push(good, '--redis-prefix', chartPrefix)).code, 0);
    const proxy = startCli(
      ['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--snapshot-warn-interval', '1s'],
      { REDIS_URL: good },
    );
    try {
      await proxy.waitForOutput(
        /"rules":"redis redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ prefix socks4-fleet".*"msg":"socks4-fleet proxy listening"/,
      );
      const warning = new RegExp(
        `"level":"warn".*"redis":"redis://:\\*\\*\\*@127\\.0\\.0\\.1:\\d+","prefix":"socks4-fleet".*no rules snapshot under prefix \\\\"socks4-fleet\\\\": every request is refused.*holds rules under prefix .*\\\\"${chartPrefix}\\\\"`,
        'g',
      );
      await proxy.waitForOutput(warning);
      // Periodically, not once: a second warning within the 1s interval (bounded wait).
      for (let i = 0; i < 100 && (proxy.output().match(warning) ?? []).length < 2; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.ok((proxy.output().match(warning) ?? []).length >= 2, proxy.output());
      assertNoSecrets(proxy.output());
    } finally {
      await proxy.stop('SIGKILL');
    }
  });

  it('policy push to a new prefix while another holds rules warns about the mismatch', async () => {
    const other = `laptop-${randomUUID().slice(0, 8)}`;
    const { code, err } = await push(good, '--redis-prefix', other);
    assert.equal(code, 0);
    assert.match(
      err,
      new RegExp(
        `^warning: no proxy has read prefix "${other}" before .*holds rules under .*pass --redis-prefix to match`,
      ),
    );
  });
});

describe('the operator', () => {
  it('logs a wrong Redis password at once, with the masked URL', async () => {
    // Nothing listens on port 1 for Kubernetes: the operator retries that in the background.
    const kubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      }),
    );
    const operator = startCli(
      ['operator', '--kubeconfig', kubeconfig, '--no-leader-elect', '--ops-listen', '127.0.0.1:0'],
      { REDIS_URL: `redis://:wrong@127.0.0.1:${redis.port}` },
    );
    try {
      await operator.waitForOutput(
        /"level":"error".*"redis":"redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?".*"problem":"auth".*authentication failed \(WRONGPASS/,
        20_000,
      );
      assertNoSecrets(operator.output());
    } finally {
      await operator.stop('SIGKILL');
    }
  });
});
