// `socks4-fleet operator` as real processes: two replicas where only the Lease holder publishes and
// the standby takes over when the leader dies; and a replica killed in the middle of a stream of
// changes whose successor converges to exactly the snapshot the cluster describes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RedisClient } from '../../src/redis/connection.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import { stringifyCanonical } from '../../src/rules/snapshot-document.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { operatorOpsPort, startOperatorReplica } from '../helpers/operator-replica.ts';
import type { CliProcess } from '../helpers/spawn.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  deletePolicy,
  listPolicies,
  OPERATOR_NAMESPACE,
  readPublished,
  readyOf,
  startTestCluster,
  statusOf,
  updatePolicySpec,
  waitFor,
  waitForPolicyReady,
  type TestCluster,
} from './cluster.ts';

let cluster: TestCluster;
let redisServer: RedisServer;
let redis: RedisClient;
const processes: CliProcess[] = [];

before(async () => {
  [cluster, redisServer] = await Promise.all([startTestCluster(), startRedis()]);
  redis = await connectRedis(redisServer.url);
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop('SIGKILL')));
  if (redis !== undefined) await closeRedisClient(redis);
  await Promise.all([cluster?.stop(), redisServer?.stop()]);
});

function startReplica(identity: string, prefix: string, extra: string[] = []): CliProcess {
  const cli = startOperatorReplica({ cluster, redisUrl: redisServer.url, prefix, identity, args: extra });
  processes.push(cli);
  return cli;
}

async function leaseHolder(): Promise<string> {
  return (
    await cluster.kubectl(
      'get',
      'lease',
      'socks4-fleet-operator',
      '-n',
      OPERATOR_NAMESPACE,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    )
  ).trim();
}

test('two replicas: only the leader publishes; when it dies the standby takes over and publishes', async () => {
  const prefix = 'failover';
  await cluster.createNamespace('ha');
  const replicas = { a: startReplica('a', prefix), b: startReplica('b', prefix) };
  const ports = { a: await operatorOpsPort(replicas.a), b: await operatorOpsPort(replicas.b) };
  const leader = await waitFor(
    'a Lease holder',
    async () => ((await leaseHolder()) || undefined) as 'a' | 'b' | undefined,
  );
  const standby = leader === 'a' ? 'b' : 'a';

  // Every version announced on the notice channel, and who wrote its document.
  const listener = await connectRedis(redisServer.url);
  const announced: string[] = [];
  listener.on('message', (_channel: string, version: string) => announced.push(version));
  await listener.subscribe(ruleKeys(prefix).channel);
  try {
    for (let i = 0; i < 5; i++)
      await createPolicy(cluster.admin, 'ha', `p${i}`, {
        rules: [{ name: 'r', action: 'Allow', to: { ports: [String(1000 + i)] } }],
      });
    await waitFor('five policies Ready', async () => {
      const all = (await listPolicies(cluster.admin)).filter((p) => p.metadata.namespace === 'ha');
      return all.length === 5 && all.every((p) => readyOf(p)?.status === 'True') ? true : undefined;
    });
    const view = await readPublished(redis, prefix);
    assert.equal(view?.specs.size, 5);
    // publishSnapshot rewrites the document even when the rules are unchanged, so a standby
    // that published anything at all would have left its name on the current document.
    assert.equal(view?.document.source, `operator ${leader}`);
    assert.ok(announced.length >= 1);
    for (const version of announced) {
      const doc = JSON.parse((await redis.get(ruleKeys(prefix).snapshot(version))) ?? '{}') as { source?: string };
      assert.equal(doc.source, `operator ${leader}`, version);
    }
    assert.doesNotMatch(replicas[standby].output(), /published rules snapshot/);
    const standbyMetrics = await (await fetch(`http://127.0.0.1:${ports[standby]}/metrics`)).text();
    assert.match(standbyMetrics, /^socks4_operator_leader 0$/m);
    // Nor did it write to the API server: it never ran a single reconcile.
    assert.doesNotMatch(standbyMetrics, /^socks4_operator_reconciles_total\{/m);
    assert.match(standbyMetrics, /^socks4_operator_watched_policies 5$/m, 'its cache is warm for a quick takeover');
    assert.match(
      await (await fetch(`http://127.0.0.1:${ports[leader]}/metrics`)).text(),
      /^socks4_operator_leader 1$/m,
    );
    assert.equal(
      (await fetch(`http://127.0.0.1:${ports[standby]}/readyz`)).status,
      200,
      'a standby is ready (its cache is warm)',
    );

    // The leader dies without releasing the Lease: the standby waits it out, then leads.
    const killedAt = performance.now();
    await replicas[leader].stop('SIGKILL');
    await createPolicy(cluster.admin, 'ha', 'after-failover', { rules: [{ name: 'r', action: 'Deny' }] });
    const taken = await waitFor(
      'the standby to publish',
      async () => {
        const v = await readPublished(redis, prefix);
        return v?.specs.has('ha/after-failover') === true ? v : undefined;
      },
      20_000,
    );
    const takeoverMs = performance.now() - killedAt;
    assert.equal(taken.document.source, `operator ${standby}`);
    assert.equal(taken.specs.size, 6);
    assert.ok(takeoverMs >= 1_500, `took over after ${Math.round(takeoverMs)} ms, before the 2 s lease could expire`);
    assert.equal(await leaseHolder(), standby);
    await waitForPolicyReady(cluster.admin, 'ha', 'after-failover');

    // A clean stop releases the Lease for the next replica at once.
    assert.equal(await replicas[standby].stop('SIGTERM'), 0);
    assert.equal(await leaseHolder(), '');
  } finally {
    await closeRedisClient(listener);
    await Promise.all(Object.values(replicas).map((r) => r.stop('SIGKILL')));
  }
});

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHANGES = 200;

test(`an operator killed in the middle of ${CHANGES} changes is replaced, and the successor converges to exactly the desired snapshot`, async () => {
  const prefix = 'restart';
  const namespaces = ['stream-a', 'stream-b'];
  for (const ns of namespaces) await cluster.createNamespace(ns);
  const first = startReplica('first', prefix, ['--namespaces', namespaces.join(',')]);
  await operatorOpsPort(first);
  await waitFor('the first replica to publish', async () =>
    (await readPublished(redis, prefix)) === null ? undefined : true,
  );

  // The model: what the cluster should hold after the stream. Each name is created once, updated
  // some times, and maybe deleted; never re-created (a deleting object still holds its name).
  const rand = random(42);
  const desired = new Map<string, unknown>();
  const deleted = new Set<string>();
  const names = Array.from({ length: 40 }, (_, i) => `${namespaces[i % 2]}/p${i}`);
  let second: CliProcess | null = null;
  for (let change = 0; change < CHANGES; change++) {
    if (change === CHANGES / 2) {
      await first.stop('SIGKILL');
      second = startReplica('second', prefix, ['--namespaces', namespaces.join(',')]);
    }
    const live = names.filter((n) => desired.has(n));
    const unborn = names.filter((n) => !desired.has(n) && !deleted.has(n));
    const roll = rand();
    const key =
      unborn.length > 0 && (roll < 0.25 || live.length === 0)
        ? (unborn[Math.floor(rand() * unborn.length)] as string)
        : (live[Math.floor(rand() * live.length)] as string);
    const [ns, name] = key.split('/') as [string, string];
    const spec = {
      priority: Math.floor(rand() * 100),
      rules: [{ name: 'r', action: rand() < 0.5 ? 'Allow' : 'Deny', to: { ports: [String(1 + change)] } }],
    };
    if (!desired.has(key)) {
      await createPolicy(cluster.admin, ns, name, spec);
      desired.set(key, spec);
    } else if (roll > 0.9) {
      await deletePolicy(cluster.admin, ns, name);
      desired.delete(key);
      deleted.add(key);
    } else {
      await updatePolicySpec(cluster.admin, ns, name, spec);
      desired.set(key, spec);
    }
    await new Promise((resolve) => setTimeout(resolve, 15)); // a stream, not a single burst
  }
  assert.ok(second !== null);
  assert.ok(deleted.size > 0 && desired.size > 10, `${deleted.size} deleted, ${desired.size} live`);

  const converged = await waitFor(
    'the exact desired snapshot',
    async () => {
      const view = await readPublished(redis, prefix);
      if (view === null || view.specs.size !== desired.size) return undefined;
      for (const [key, spec] of desired)
        if (stringifyCanonical(view.specs.get(key)) !== stringifyCanonical(spec)) return undefined;
      return view;
    },
    30_000,
    100,
  );
  assert.equal(converged.document.source, 'operator second');
  await waitFor(
    'every policy Ready at its generation, every deleted one gone',
    async () => {
      const all = (await listPolicies(cluster.admin)).filter((p) => namespaces.includes(p.metadata.namespace ?? ''));
      if (all.length !== desired.size) return undefined;
      return all.every((p) => readyOf(p)?.status === 'True' && statusOf(p).observedGeneration === p.metadata.generation)
        ? true
        : undefined;
    },
    30_000,
    100,
  );
  await second.stop('SIGTERM');
});
