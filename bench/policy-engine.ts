// The policy engine alone: compile time and decisions per second for 10, 1 000 and 10 000 rules,
// in the process the harness spawns for it (so nothing else shares its heap). Prints one JSON
// object. `scripts/node bench/policy-engine.ts` runs it by hand.
//
// Rule shape ("tenants"): a platform policy of two global denies first, then one rule per tenant
// keyed by its own /24 source network, with exact and glob USERIDs, ports and limits, spread over
// policies of at most 100 rules, the way an operator with one Socks4Policy per team would publish
// them. Also measured, for honesty: the same count of rules that differ only by a USERID glob,
// which no index can narrow, so every decision scans them in order.
import { performance } from 'node:perf_hooks';
import type { PolicyEngineRow } from './lib/model.ts';
import {
  compilePolicies,
  evaluate,
  type CompiledPolicySet,
  type EvalContext,
  type PolicyRule,
  type Socks4Policy,
} from '../src/policy/index.ts';

const RULES_PER_POLICY = 100;
const CONTEXTS = 4096;
const MIN_SECONDS = 1;
const WARMUP_MS = 300;
const BATCH = 1024;
const MAX_DECISIONS = 20_000_000;
const COMPILE_REPEATS = 5;
const COMPILE_BUDGET_MS = 10_000;

type Shape = PolicyEngineRow['shape'];

function policy(name: string, priority: number, rules: PolicyRule[]): Socks4Policy {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name, namespace: 'bench' },
    spec: { priority, rules },
  };
}

function tenantNet(t: number): string {
  return `10.${(t >> 8) & 255}.${t & 255}`;
}

function tenantRule(t: number, shape: Shape): PolicyRule {
  if (shape === 'globs-only') {
    return { name: `tenant-${t}`, action: 'Allow', from: { userids: [`svc-${t}-*`] }, to: { ports: ['443'] } };
  }
  return {
    name: `tenant-${t}`,
    action: t % 5 === 4 ? 'Deny' : 'Allow',
    commands: ['Connect'],
    from: { cidrs: [`${tenantNet(t)}.0/24`], userids: [`team-${t}`, `svc-${t}-*`] },
    to: { cidrs: ['0.0.0.0/0'], ports: ['443', '8000-8999'] },
    ...(t % 3 === 0 && t % 5 !== 4
      ? { limits: { connectionRate: { perSecond: 10, burst: 20, key: 'SourceIP' as const } } }
      : {}),
  };
}

export function buildPolicies(ruleCount: number, shape: Shape): Socks4Policy[] {
  const platform = policy('platform', 10, [
    { name: 'deny-metadata', action: 'Deny', to: { cidrs: ['169.254.169.254/32'] } },
    { name: 'deny-smtp', action: 'Deny', to: { ports: ['25', '465', '587'] } },
  ]);
  const tenants = Math.max(0, ruleCount - 2);
  const out = [platform];
  for (let first = 0; first < tenants; first += RULES_PER_POLICY) {
    const rules: PolicyRule[] = [];
    for (let t = first; t < Math.min(tenants, first + RULES_PER_POLICY); t++) rules.push(tenantRule(t, shape));
    out.push(policy(`team-${first / RULES_PER_POLICY}`, 1000, rules));
  }
  return out;
}

/** Nine in ten contexts belong to a random tenant; one in ten comes from nowhere (NoRuleMatched). */
function buildContexts(tenants: number, shape: Shape): EvalContext[] {
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const self = new Set<string>(['192.0.2.1']);
  return Array.from({ length: CONTEXTS }, (_, i): EvalContext => {
    const t = random(Math.max(1, tenants));
    const miss = i % 10 === 9;
    return {
      command: 'connect',
      sourceIp: miss ? `192.168.${random(256)}.${random(256)}` : `${tenantNet(t)}.${1 + random(254)}`,
      userId: shape === 'globs-only' || random(2) === 0 ? `svc-${t}-worker` : `team-${t}`,
      host: null,
      destIp: `93.184.${random(256)}.${random(256)}`,
      destPort: 443,
      selfAddresses: self,
    };
  });
}

function timeCompile(policies: Socks4Policy[]): { ms: number; set: CompiledPolicySet } {
  const times: number[] = [];
  let set = compilePolicies(policies);
  const budgetEnd = performance.now() + COMPILE_BUDGET_MS;
  for (let i = 0; i < COMPILE_REPEATS && performance.now() < budgetEnd; i++) {
    const start = performance.now();
    set = compilePolicies(policies);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[times.length >> 1] ?? Number.NaN, set };
}

/**
 * Decisions per second of wall time and per second of this process's CPU time. On a shared
 * machine the scheduler may hand us half a core; the CPU-time rate is what the engine does with
 * the core it gets, and the one the targets are judged on (both are reported).
 */
function timeDecisions(
  set: CompiledPolicySet,
  contexts: EvalContext[],
): { perSecond: number; perCpuSecond: number; allowed: number } {
  let allowed = 0;
  let decisions = 0;
  // Batches small enough that a slow shape (a linear scan of 10 000 globs) still stops on time.
  const runBatch = (): void => {
    for (let i = 0; i < BATCH; i++) {
      if (evaluate(set, contexts[(decisions + i) & (CONTEXTS - 1)] as EvalContext).action === 'allow') allowed++;
    }
    decisions += BATCH;
  };
  // Warm-up: let the JIT settle on the shapes it sees.
  const warmEnd = performance.now() + WARMUP_MS;
  for (let b = 0; b < 100 && performance.now() < warmEnd; b++) runBatch();
  allowed = 0;
  decisions = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let elapsed = 0;
  while (decisions < MAX_DECISIONS && elapsed < MIN_SECONDS * 1000) {
    runBatch();
    elapsed = performance.now() - start;
  }
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    perSecond: decisions / (elapsed / 1000),
    perCpuSecond: decisions / cpuSeconds,
    allowed: allowed / decisions,
  };
}

/** One row of the policy-engine table: the shape bench/run.ts reads back as JSON. */
export type PolicyEngineResult = PolicyEngineRow;

export function measure(ruleCount: number, shape: Shape): PolicyEngineResult {
  const policies = buildPolicies(ruleCount, shape);
  const { ms, set } = timeCompile(policies);
  const { perSecond, perCpuSecond, allowed } = timeDecisions(set, buildContexts(ruleCount - 2, shape));
  return {
    shape,
    rules: set.ruleCount,
    policies: set.policyCount,
    compileMs: ms,
    decisionsPerSecond: perSecond,
    decisionsPerCpuSecond: perCpuSecond,
    allowedFraction: allowed,
    index: set.index.dimension,
  };
}

if (import.meta.main) {
  const results = [
    measure(10, 'tenants'),
    measure(1000, 'tenants'),
    measure(10_000, 'tenants'),
    measure(10_000, 'globs-only'),
  ];
  process.stdout.write(`${JSON.stringify(results)}\n`);
}
