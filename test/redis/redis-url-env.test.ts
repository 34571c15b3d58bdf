// The Redis URL from env REDIS_URL instead of --redis-url, the way the chart passes an external
// Redis so credentials stay out of the process list: real CLI processes on a real redis-server
// that wants a password.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { getOps, probe, startSink } from '../helpers/fleet.ts';
import { startRedis } from '../helpers/redis.ts';
import { freePort, runCli, startCli, type CliProcess } from '../helpers/spawn.ts';

const GRANTED = 90;
const REFUSED = 91;
const PASSWORD = `pw-${randomUUID().slice(0, 8)}`;

const redis = await startRedis(['--requirepass', PASSWORD]);
const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`;
const admin = createRedisClient({ url });
const sink = await startSink();
const dir = mkdtempSync(path.join(tmpdir(), 'socks4-redis-url-env-'));
const running: CliProcess[] = [];
after(async () => {
  await Promise.all(running.map((cli) => cli.stop('SIGKILL')));
  await sink.close();
  await closeRedisClient(admin);
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});
assert.ok(await waitForReady(admin, 5000));

/** A policy file allowing CONNECT to the sink only. */
function policyFile(): string {
  const file = path.join(dir, `${randomUUID()}.yaml`);
  writeFileSync(
    file,
    `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: env, namespace: test}
spec:
  rules:
    - {name: sink, action: Allow, to: {cidrs: ["127.0.0.1/32"], ports: ["${sink.port}"]}}
`,
  );
  return file;
}

/** `proxy` on free loopback ports, running until it logs that it listens. */
async function startProxy(
  args: string[],
  env: Record<string, string>,
): Promise<{ cli: CliProcess; port: number; ops: number }> {
  const [port, ops] = [await freePort(), await freePort()];
  const cli = startCli(
    ['proxy', '--listen', `127.0.0.1:${port}`, '--ops-listen', `127.0.0.1:${ops}`, '--drain-grace', '0', ...args],
    env,
  );
  running.push(cli);
  await cli.waitForOutput(/socks4-fleet proxy listening/);
  return { cli, port, ops };
}

describe('the Redis URL from env REDIS_URL', () => {
  it('policy push publishes with only REDIS_URL set', async () => {
    const prefix = `env-${randomUUID().slice(0, 8)}`;
    const pushed = await runCli(['policy', 'push', policyFile(), '--redis-prefix', prefix], { REDIS_URL: url });
    assert.equal(pushed.code, 0, pushed.output);
    const version = await admin.get(ruleKeys(prefix).pointer);
    assert.ok(version !== null, 'the pointer is set');
    assert.match(pushed.output, new RegExp(`^published ${version} \\(1 policies, 1 rules\\) to ${prefix}`));
  });

  it('a proxy with only REDIS_URL serves the pushed rules in fleet mode; the URL is not in its process list', async () => {
    const prefix = `env-${randomUUID().slice(0, 8)}`;
    const pushed = await runCli(['policy', 'push', policyFile(), '--redis-prefix', prefix], { REDIS_URL: url });
    assert.equal(pushed.code, 0, pushed.output);
    const { cli, port, ops } = await startProxy(['--redis-prefix', prefix], { REDIS_URL: url });
    const version = (await admin.get(ruleKeys(prefix).pointer)) as string;
    assert.equal((await getOps(ops, '/readyz')).status, 200);
    assert.match((await getOps(ops, '/metrics')).body, new RegExp(`socks4_snapshot_info\\{version="${version}"\\} 1`));
    assert.equal(await probe(port, sink.port), GRANTED);
    assert.equal(await probe(port, ops), REFUSED, 'anything else is denied by the pushed rules');
    const cmdline = readFileSync(`/proc/${cli.child.pid}/cmdline`, 'utf8');
    assert.ok(
      !cmdline.includes(PASSWORD) && !cmdline.includes(url),
      `the URL stays out of the process list: ${cmdline.replaceAll('\0', ' ')}`,
    );
  });

  it('--redis-url wins over REDIS_URL', async () => {
    const prefix = `env-${randomUUID().slice(0, 8)}`;
    const pushed = await runCli(['policy', 'push', policyFile(), '--redis-url', url, '--redis-prefix', prefix], {
      REDIS_URL: 'not a url',
    });
    assert.equal(pushed.code, 0, pushed.output);
    assert.notEqual(await admin.get(ruleKeys(prefix).pointer), null);
  });

  it('--policy-file means file mode: a REDIS_URL in the environment is ignored, even a bad one', async () => {
    // Read as a Redis URL, this one would have been a usage error before the proxy listened.
    const { port, ops, cli } = await startProxy(['--policy-file', policyFile()], { REDIS_URL: 'redis//not-a-url' });
    assert.equal((await getOps(ops, '/readyz')).status, 200);
    assert.equal(await probe(port, sink.port), GRANTED);
    assert.doesNotMatch(cli.output(), /REDIS_URL/);
  });

  for (const command of [['proxy'], ['policy', 'push', 'examples/policy.yaml']]) {
    const name = command.slice(0, 2).join(' ');
    it(`${name}: a bad REDIS_URL is a usage error naming REDIS_URL, without echoing its value`, async () => {
      const unparseable = await runCli(command, { REDIS_URL: `redis//user:${PASSWORD}@host:6379` });
      assert.equal(unparseable.code, 2, unparseable.output);
      assert.match(
        unparseable.output,
        new RegExp(`^socks4-fleet ${name}: REDIS_URL: not a URL \\(expected redis://host:port`),
      );
      assert.doesNotMatch(unparseable.output, new RegExp(PASSWORD), 'the password is not printed');
      const scheme = await runCli(command, { REDIS_URL: 'http://127.0.0.1:6379' });
      assert.equal(scheme.code, 2, scheme.output);
      assert.match(scheme.output, /REDIS_URL: "http:" is not a Redis URL scheme/);
    });
  }

  it('with neither --redis-url nor REDIS_URL (an empty one counts as unset), the usage error names both', async () => {
    const proxy = await runCli(['proxy'], { REDIS_URL: '' });
    assert.equal(proxy.code, 2, proxy.output);
    assert.match(proxy.output, /give --policy-file FILE, or --redis-url URL \(or env REDIS_URL\) for fleet mode/);
    const push = await runCli(['policy', 'push', 'examples/policy.yaml'], { REDIS_URL: '' });
    assert.equal(push.code, 2, push.output);
    assert.match(push.output, /--redis-url URL \(or env REDIS_URL\) is required/);
  });

  it('the help of both commands documents REDIS_URL', async () => {
    for (const command of [['proxy'], ['policy', 'push']]) {
      const help = await runCli([...command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.output, /^Usage: socks4-fleet .*--redis-url URL \| env REDIS_URL\)/);
      assert.match(help.output, /REDIS_URL, which keeps credentials out of the process list/);
    }
  });
});
