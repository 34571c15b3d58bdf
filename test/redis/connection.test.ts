// Connection options: the pure plan (URL, credentials, TLS, Sentinel, Cluster, fail-fast knobs)
// and each mode against a real server: ACL user and password, TLS with a private CA, Sentinel,
// and Cluster (with the rule source and publisher on it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadPolicyText } from '../../src/policy/load.ts';
import { findRedisUrl, readRedisFlags, redactRedisUrl } from '../../src/cli/redis-flags.ts';
import {
  closeRedisClient,
  createRedisClient,
  parseRedisUrl,
  planRedisClient,
  waitForReady,
  type RedisConnectionOptions,
} from '../../src/redis/connection.ts';
import { publishSnapshot } from '../../src/rules/publish-snapshot.ts';
import { RedisRuleSource } from '../../src/rules/redis-source.ts';
import type { RuleSnapshot } from '../../src/rules/types.ts';
import { findFreePort, startRedis, startRedisCluster, startRedisSentinel } from '../helpers/redis.ts';
import { decide, policyYaml } from '../rules/rule-source-contract.ts';

type T = { after(fn: () => unknown): void };

async function connects(t: T, options: RedisConnectionOptions, timeoutMs = 5000): Promise<boolean> {
  const client = createRedisClient(options);
  t.after(() => closeRedisClient(client));
  if (!(await waitForReady(client, timeoutMs))) return false;
  const key = `probe-${randomUUID()}`;
  await client.set(key, 'x');
  return (await client.get(key)) === 'x';
}

describe('redis connection plan', () => {
  it('parses redis:// and rediss:// URLs with credentials and database', () => {
    assert.deepEqual(parseRedisUrl('redis://localhost'), {
      host: 'localhost',
      port: 6379,
      tls: false,
      username: undefined,
      password: undefined,
      db: 0,
    });
    assert.deepEqual(parseRedisUrl('rediss://al%40ce:p%3Ass@[::1]:6380/3'), {
      host: '::1',
      port: 6380,
      tls: true,
      username: 'al@ce',
      password: 'p:ss',
      db: 3,
    });
    assert.throws(() => parseRedisUrl('http://x'), /scheme/);
    assert.throws(() => parseRedisUrl('redis://x/abc'), /database/);
    assert.throws(() => parseRedisUrl('not a url'), /not a URL/);
  });

  it('builds fail-fast clients: short timeouts, no offline queue, endless reconnects', () => {
    const plan = planRedisClient({ url: 'redis://u:p@h:1/2', password: 'override' });
    assert.ok(plan.kind === 'standalone');
    const o = plan.options;
    assert.equal(o.enableOfflineQueue, false);
    assert.equal(o.commandTimeout, 500);
    assert.equal(o.maxRetriesPerRequest, 1);
    assert.equal(o.username, 'u');
    assert.equal(o.password, 'override');
    assert.equal(o.db, 2);
    assert.ok(typeof o.retryStrategy === 'function' && (o.retryStrategy(1000) as number) <= 2100);
  });

  it('plans TLS, Sentinel and Cluster', () => {
    const tls = planRedisClient({ url: 'rediss://redis.example:6380', tlsCa: 'PEM' });
    assert.ok(tls.kind === 'standalone');
    assert.deepEqual(tls.options.tls, { ca: 'PEM', servername: 'redis.example' });
    const sentinel = planRedisClient({
      url: 'rediss://:pw@ignored',
      sentinels: [{ host: 's1', port: 26379 }],
      sentinelName: 'main',
    });
    assert.ok(sentinel.kind === 'sentinel');
    assert.equal(sentinel.options.name, 'main');
    assert.equal(sentinel.options.password, 'pw');
    assert.equal(sentinel.options.enableTLSForSentinelMode, true);
    assert.throws(() => planRedisClient({ url: 'redis://x', sentinels: [{ host: 's', port: 1 }] }), /master name/);
    const cluster = planRedisClient({
      url: 'redis://:pw@seed:7000',
      cluster: true,
      clusterNodes: [{ host: 'n2', port: 7001 }],
    });
    assert.ok(cluster.kind === 'cluster');
    assert.deepEqual(cluster.nodes, [
      { host: 'seed', port: 7000 },
      { host: 'n2', port: 7001 },
    ]);
    assert.equal(cluster.options.enableOfflineQueue, false);
    assert.equal(cluster.options.redisOptions?.password, 'pw');
  });

  it('reads the shared CLI flags, with the password from the environment', () => {
    const { connection, prefix } = readRedisFlags(
      { 'redis-url': 'redis://h:1', 'redis-sentinels': 'a:1,[::1]:2', 'redis-sentinel-name': 'm' },
      { REDIS_PASSWORD: 'envpw' },
    );
    assert.equal(prefix, 'socks4-fleet');
    assert.equal(connection.password, 'envpw');
    assert.deepEqual(connection.sentinels, [
      { host: 'a', port: 1 },
      { host: '::1', port: 2 },
    ]);
    assert.throws(() => readRedisFlags({ 'redis-url': 'redis://h', 'redis-prefix': 'a{b}' }, {}), /prefix/);
    assert.throws(() => readRedisFlags({ 'redis-url': 'redis://h', 'redis-sentinels': 'a:1' }, {}), /sentinel-name/);
    assert.throws(() => readRedisFlags({ 'redis-url': 'ftp://h' }, {}), /scheme/);
    assert.equal(redactRedisUrl('redis://u:secret@h:1'), 'redis://u:***@h:1');
  });

  it('takes the URL from env REDIS_URL when --redis-url is absent, naming the source in errors', () => {
    assert.equal(readRedisFlags({}, { REDIS_URL: 'redis://u:pw@h:1' }).connection.url, 'redis://u:pw@h:1');
    assert.equal(
      readRedisFlags({ 'redis-url': 'redis://flag:1' }, { REDIS_URL: 'redis://env:1' }).connection.url,
      'redis://flag:1',
    );
    assert.deepEqual(findRedisUrl({}, { REDIS_URL: 'redis://env:1' }), { url: 'redis://env:1', from: 'REDIS_URL' });
    assert.equal(findRedisUrl({}, { REDIS_URL: '' }), null, 'an empty REDIS_URL counts as unset');
    assert.throws(() => readRedisFlags({}, {}), /^UsageError: --redis-url URL \(or env REDIS_URL\) is required$/);
    assert.throws(
      () => readRedisFlags({}, { REDIS_URL: 'ftp://h' }),
      /^UsageError: REDIS_URL: "ftp:" is not a Redis URL scheme/,
    );
    assert.throws(() => readRedisFlags({ 'redis-url': 'ftp://h' }, {}), /^UsageError: --redis-url: "ftp:"/);
    // A mistyped URL may still hold a password: the message leaves the value out.
    assert.throws(
      () => readRedisFlags({}, { REDIS_URL: 'redis//u:hunter2@h' }),
      (error: Error) => !error.message.includes('hunter2') && /^REDIS_URL: not a URL/.test(error.message),
    );
  });
});

describe('redis connection modes (real servers)', () => {
  it('authenticates an ACL user with username and password', async (t) => {
    const redis = await startRedis([
      '--user',
      'default',
      'off',
      '--user',
      'proxy',
      'on',
      '>s3cret',
      '~*',
      '&*',
      '+@all',
    ]);
    t.after(() => redis.stop());
    assert.equal(
      await connects(t, { url: `redis://127.0.0.1:${redis.port}`, username: 'proxy', password: 's3cret' }),
      true,
    );
    assert.equal(await connects(t, { url: `redis://proxy:s3cret@127.0.0.1:${redis.port}` }), true);
    assert.equal(
      await connects(t, { url: `redis://127.0.0.1:${redis.port}`, username: 'proxy', password: 'wrong' }, 500),
      false,
    );
  });

  it('speaks TLS to a server whose certificate a private CA signed', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'socks4-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string): string => path.join(dir, name);
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '1',
      '-subj',
      '/CN=socks4-test-ca',
    );
    ssl('req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost');
    writeFileSync(file('ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    ssl(
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file('server.crt'),
      '-days',
      '1',
      '-extfile',
      file('ext'),
    );
    const tlsPort = await findFreePort();
    const redis = await startRedis([
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      file('server.crt'),
      '--tls-key-file',
      file('server.key'),
      '--tls-ca-cert-file',
      file('ca.crt'),
      '--tls-auth-clients',
      'no',
    ]);
    t.after(() => redis.stop());
    const ca = readFileSync(file('ca.crt'));
    assert.equal(await connects(t, { url: `rediss://localhost:${tlsPort}`, tlsCa: ca }), true);
    assert.equal(await connects(t, { url: `rediss://localhost:${tlsPort}` }, 500), false, 'an unknown CA is refused');
  });

  it('finds the master through Sentinel', async (t) => {
    const master = await startRedis();
    t.after(() => master.stop());
    const sentinel = await startRedisSentinel(master.port, 'fleet-main');
    t.after(() => sentinel.stop());
    assert.equal(
      await connects(t, {
        url: 'redis://ignored',
        sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
        sentinelName: 'fleet-main',
      }),
      true,
    );
  });

  it('publishes and follows rules on a Redis Cluster', async (t) => {
    const cluster = await startRedisCluster(3);
    t.after(() => cluster.stop());
    const [seed, ...more] = cluster.nodes;
    const options: RedisConnectionOptions = {
      url: `redis://${seed?.host}:${seed?.port}`,
      cluster: true,
      clusterNodes: more,
    };
    const publisher = createRedisClient(options);
    t.after(() => closeRedisClient(publisher));
    assert.ok(await waitForReady(publisher, 5000));
    const prefix = `cl-${randomUUID().slice(0, 8)}`;
    await publishSnapshot(publisher, prefix, loadPolicyText(policyYaml(443), 't').policies);
    const client = createRedisClient(options);
    t.after(() => closeRedisClient(client));
    const source = new RedisRuleSource({ client, prefix, refreshIntervalMs: 60_000 });
    t.after(() => source.stop());
    await source.start();
    assert.equal(decide(source.current(), 443), 'allow:proxies/office/rule-0');
    const loaded = once(source, 'snapshot', { signal: AbortSignal.timeout(5000) });
    await publishSnapshot(publisher, prefix, loadPolicyText(policyYaml(443, { action: 'Deny' }), 't').policies);
    assert.equal(decide(((await loaded) as [RuleSnapshot])[0], 443), 'deny:proxies/office/rule-0');
  });
});
