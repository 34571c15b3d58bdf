// The operator's figures, on real processes: a real kube-apiserver + etcd (test/helpers/
// kube-harness.ts), a real redis-server and `socks4-fleet operator` as its own process, under
// the RBAC user of deploy/rbac/. Never part of `make test` (the suites run smaller versions).
//   1. tool build time: `scripts/build-tools.sh` warm (stamps fresh) and, with --cold-build, cold
//      (a copy of the build into a temporary root with an empty Go build cache; the module cache
//      is reused, so downloads are not counted)
//   2. API-server harness start time (etcd + kube-apiserver to /readyz), over N starts
//   3. `kubectl apply` → snapshot in Redis, p50/p99 over N creates and N updates
//   4. 1 000 policies: operator started on them (cold) and created in a burst while it runs
// Run: scripts/node bench/operator-figures.ts [--applies 100] [--policies 1000] [--starts 5] [--cold-build]
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { stringify } from 'yaml';
import type { RedisClient } from '../src/redis/connection.ts';
import { ruleKeys } from '../src/rules/redis-keys.ts';
import { stringifyCanonical, type SnapshotDocument } from '../src/rules/snapshot-document.ts';
import { startKubeControlPlane } from '../test/helpers/kube-harness.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { repoRoot, startCli, type CliProcess } from '../test/helpers/spawn.ts';
import {
  closeRedisClient,
  connectRedis,
  createPolicy,
  listPolicies,
  OPERATOR_NAMESPACE,
  policyManifest,
  readyOf,
  startTestCluster,
  statusOf,
  waitFor,
  type TestCluster,
} from '../test/operator/cluster.ts';

const { values } = parseArgs({
  options: {
    applies: { type: 'string', default: '100' },
    policies: { type: 'string', default: '1000' },
    starts: { type: 'string', default: '5' },
    'cold-build': { type: 'boolean', default: false },
  },
});
const APPLIES = Number(values.applies);
const POLICIES = Number(values.policies);
const STARTS = Number(values.starts);
const PREFIX = 'bench';

const results: Record<string, unknown> = {
  machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
};
const lines: string[] = [];
const report = (label: string, value: string): void => {
  lines.push(`${label.padEnd(58)} ${value}`);
  console.log(`${label.padEnd(58)} ${value}`);
};

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
const ms = (v: number): string => `${Math.round(v)} ms`;
const dist = (v: readonly number[]): string =>
  `p50 ${ms(percentile(v, 50))}, p99 ${ms(percentile(v, 99))}, max ${ms(Math.max(...v))} (n=${v.length})`;

// --- 1. tool build -------------------------------------------------------------------------------
function timeBuild(root: string, env: NodeJS.ProcessEnv): { seconds: number; log: string } {
  const started = performance.now();
  const run = spawnSync('nice', ['-n', '10', path.join(root, 'scripts/build-tools.sh')], {
    env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (run.status !== 0) throw new Error(`build-tools failed:\n${run.stdout}\n${run.stderr}`);
  return { seconds: (performance.now() - started) / 1000, log: run.stdout };
}
const warm = timeBuild(repoRoot, process.env);
report('tools: scripts/build-tools.sh, warm', `${warm.seconds.toFixed(1)} s`);
results.buildWarmSeconds = warm.seconds;
if (values['cold-build']) {
  const root = mkdtempSync(path.join(tmpdir(), 'cold-build-'));
  try {
    mkdirSync(path.join(root, 'scripts'));
    cpSync(path.join(repoRoot, 'scripts/build-tools.sh'), path.join(root, 'scripts/build-tools.sh'));
    cpSync(path.join(repoRoot, 'tools'), path.join(root, 'tools'), { recursive: true });
    const env = { ...process.env, GOCACHE: path.join(root, 'gocache') };
    const cold = timeBuild(root, env);
    report('tools: cold (empty Go build cache, modules cached)', `${(cold.seconds / 60).toFixed(1)} min`);
    for (const m of cold.log.matchAll(/built (.+?) in (\d+)s/g)) report(`  ${m[1]}`, `${m[2]} s`);
    const rewarm = timeBuild(root, env);
    report('tools: warm again on that copy', `${rewarm.seconds.toFixed(1)} s`);
    results.buildColdSeconds = cold.seconds;
    results.buildColdPerTool = Object.fromEntries(
      [...cold.log.matchAll(/built (.+?) in (\d+)s/g)].map((m) => [m[1], Number(m[2])]),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// --- 2. harness start ------------------------------------------------------------------------------
const starts: number[] = [];
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  const plane = await startKubeControlPlane();
  starts.push(performance.now() - t0);
  await plane.stop();
}
report('harness: etcd + kube-apiserver to /readyz', dist(starts));
results.harnessStartMs = starts;

// --- 3 and 4 need a cluster, Redis and the operator ---------------------------------------------
const t0 = performance.now();
const cluster: TestCluster = await startTestCluster();
report('harness + CRD + RBAC applied (test fixture)', ms(performance.now() - t0));
const redisServer = await startRedis();
const redis = await connectRedis(redisServer.url);
const dir = mkdtempSync(path.join(tmpdir(), 'operator-figures-'));
let operator: CliProcess | null = null;

// First time (this process's clock) each policy, with exactly this spec, appeared in a
// published snapshot: the notice is timed on arrival, the document read right after.
const firstSeen = new Map<string, number>();
const seenId = (key: string, spec: unknown): string => `${key} ${stringifyCanonical(spec)}`;
const listener: RedisClient = await connectRedis(redisServer.url);
listener.on('message', (_channel: string, version: string) => {
  const at = performance.now();
  void redis.get(ruleKeys(PREFIX).snapshot(version)).then((json) => {
    if (json === null) return;
    for (const p of (JSON.parse(json) as SnapshotDocument).policies) {
      const id = seenId(`${p.metadata.namespace}/${p.metadata.name}`, p.spec);
      if (!firstSeen.has(id)) firstSeen.set(id, at);
    }
  });
});
await listener.subscribe(ruleKeys(PREFIX).channel);

function startOperatorProcess(identity: string): CliProcess {
  return startCli([
    'operator',
    '--redis-url',
    redisServer.url,
    '--redis-prefix',
    PREFIX,
    '--kubeconfig',
    cluster.operatorKubeconfig,
    '--lease-namespace',
    OPERATOR_NAMESPACE,
    '--identity',
    identity,
    '--ops-listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
  ]);
}

try {
  operator = startOperatorProcess('bench-1');
  await waitFor('the first publish', async () => (await redis.get(ruleKeys(PREFIX).pointer)) ?? undefined, 60_000, 50);

  // --- 3. kubectl apply → snapshot ---
  await cluster.createNamespace('apply');
  const kubectlEnv = { ...process.env };
  delete kubectlEnv.NODE_EXTRA_CA_CERTS;
  const apply = async (name: string, spec: unknown): Promise<{ total: number; kubectl: number }> => {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, stringify(policyManifest('apply', name, spec)));
    const id = seenId(`apply/${name}`, { ...(spec as object), priority: 1000 });
    const started = performance.now();
    await promisify(execFile)(
      path.join(repoRoot, 'bin/kubectl'),
      ['--kubeconfig', cluster.plane.kubeconfigPath, 'apply', '-f', file],
      { env: kubectlEnv },
    );
    const kubectl = performance.now() - started;
    const seen = await waitFor(`${name} published`, () => firstSeen.get(id), 30_000, 2);
    return { total: seen - started, kubectl };
  };
  const spec = (port: number) => ({ rules: [{ name: 'r', action: 'Allow', to: { ports: [String(port)] } }] });
  const creates: number[] = [];
  const updates: number[] = [];
  const kubectlCreates: number[] = [];
  const kubectlUpdates: number[] = [];
  for (let i = 0; i < APPLIES; i++) {
    const r = await apply(`p${i}`, spec(1000 + i));
    creates.push(r.total);
    kubectlCreates.push(r.kubectl);
  }
  for (let i = 0; i < APPLIES; i++) {
    const r = await apply('p0', spec(20_000 + i));
    updates.push(r.total);
    kubectlUpdates.push(r.kubectl);
  }
  report(`kubectl apply (create) → snapshot in Redis`, dist(creates));
  report('  kubectl itself (process start to exit)', dist(kubectlCreates));
  report(`kubectl apply (update) → snapshot in Redis`, dist(updates));
  report('  kubectl itself (process start to exit)', dist(kubectlUpdates));
  results.applyCreateMs = creates;
  results.applyUpdateMs = updates;
  results.kubectlCreateMs = kubectlCreates;
  results.kubectlUpdateMs = kubectlUpdates;

  // --- 4a. operator started on POLICIES existing policies ---
  await operator.stop('SIGTERM');
  operator = null;
  await cluster.createNamespace('thousand');
  const createMany = async (namespace: string, count: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < count; i = next++)
          await createPolicy(cluster.admin, namespace, `p${i}`, spec(1 + (i % 60_000)));
      }),
    );
  };
  await createMany('thousand', POLICIES);
  const awaitAll = async (
    namespace: string,
    count: number,
    since: number,
  ): Promise<{ published: number; ready: number }> => {
    const ids = Array.from({ length: count }, (_, i) =>
      seenId(`${namespace}/p${i}`, { ...spec(1 + (i % 60_000)), priority: 1000 }),
    );
    const published = await waitFor(
      `${count} published`,
      () =>
        ids.every((id) => firstSeen.has(id)) ? Math.max(...ids.map((id) => firstSeen.get(id) as number)) : undefined,
      300_000,
      50,
    );
    await waitFor(
      `${count} Ready`,
      async () => {
        const all = (await listPolicies(cluster.admin)).filter((p) => p.metadata.namespace === namespace);
        return all.length === count &&
          all.every((p) => readyOf(p)?.status === 'True' && statusOf(p).observedGeneration === p.metadata.generation)
          ? true
          : undefined;
      },
      300_000,
      250,
    );
    return { published: published - since, ready: performance.now() - since };
  };
  const coldStart = performance.now();
  operator = startOperatorProcess('bench-2');
  const cold = await awaitAll('thousand', POLICIES, coldStart);
  report(`${POLICIES} policies, operator (re)started on them: all published`, ms(cold.published));
  report(`  ... and all Ready (finalizer + status on each)`, ms(cold.ready));
  results.coldThousand = cold;

  // --- 4b. POLICIES created in a burst while the operator runs ---
  await cluster.createNamespace('burst');
  const burstStart = performance.now();
  await createMany('burst', POLICIES);
  const createdIn = performance.now() - burstStart;
  const burst = await awaitAll('burst', POLICIES, burstStart);
  report(`${POLICIES} policies created in a burst (8 clients, ${ms(createdIn)}): all published`, ms(burst.published));
  report(`  ... and all Ready`, ms(burst.ready));
  results.burstThousand = { ...burst, createdMs: createdIn };
} finally {
  await operator?.stop('SIGTERM');
  await closeRedisClient(listener);
  await closeRedisClient(redis);
  await Promise.all([cluster.stop(), redisServer.stop()]);
  rmSync(dir, { recursive: true, force: true });
}

const out = path.join(repoRoot, 'bench/results');
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'operator-figures.json'), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(path.join(out, 'operator-figures.txt'), `${lines.join('\n')}\n`);
console.log(`\nwritten: bench/results/operator-figures.{json,txt}`);
