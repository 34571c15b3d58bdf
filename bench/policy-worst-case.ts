// The worst-case decision time for the most expensive policy validation accepts (issue #12).
// `node bench/policy-worst-case.ts` prints one JSON object.
//
// For each glob shape, a policy (and a set of policies) is filled with patterns of that shape up
// to the matching budget (src/policy/match-cost.ts), validated with the code the CRD's objects go
// through, and decided against a 255-byte USERID that every pattern almost matches and none does,
// so every rule is tried and every pattern does its most work. Reports the slowest decision.
import { performance } from 'node:perf_hooks';
import { compilePolicies, evaluate, validatePolicy, type PolicyRule, type Socks4Policy } from '../src/policy/index.ts';
import {
  globCost,
  MAX_MATCH_COST_PER_POLICY,
  MAX_MATCH_COST_PER_SET,
  MAX_MATCH_INPUT,
} from '../src/policy/match-cost.ts';

const USER = 'a'.repeat(MAX_MATCH_INPUT);

/** A middle segment of `length` characters that never matches USER (it ends in 'b'). */
function pattern(length: number, wild: boolean): string {
  const body = wild ? 'a?'.repeat(length).slice(0, length - 1) : 'a'.repeat(length - 1);
  return `*${body}b*`;
}

function fill(budget: number, glob: string, name: string): Socks4Policy {
  const cost = globCost(glob);
  const count = Math.floor(budget / cost);
  const rules: PolicyRule[] = [];
  // At most 1000 userids a rule and 1000 rules a policy (the CRD's limits).
  for (let left = count, r = 0; left > 0; r++) {
    const n = Math.min(left, 1000);
    rules.push({ name: `r${r}`, action: 'Allow', from: { userids: Array.from({ length: n }, () => glob) } });
    left -= n;
  }
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name, namespace: 'bench' },
    spec: { priority: 1000, rules },
  };
}

function decide(policies: Socks4Policy[]): { p50Ms: number; maxMs: number } {
  const set = compilePolicies(policies);
  const ctx = {
    command: 'connect' as const,
    sourceIp: '10.0.0.1',
    userId: USER,
    host: null,
    destIp: '192.0.2.1',
    destPort: 443,
    selfAddresses: new Set<string>(),
  };
  const times: number[] = [];
  for (let i = 0; i < 30; i++) evaluate(set, ctx); // warm-up: optimised code, as in a running proxy
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    evaluate(set, ctx);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const round = (n: number): number => Math.round(n * 1000) / 1000;
  return { p50Ms: round(times[100]!), maxMs: round(times.at(-1)!) };
}

interface Row {
  segment: number;
  wild: boolean;
  patternsPerPolicy: number;
  policy: { p50Ms: number; maxMs: number };
  set: { p50Ms: number; maxMs: number };
}
const rows: Row[] = [];
for (const wild of [false, true]) {
  for (const length of [4, 16, 64, 128, 200, 250]) {
    const glob = pattern(length, wild);
    const one = fill(MAX_MATCH_COST_PER_POLICY, glob, 'one');
    const issues = validatePolicy(one);
    if (issues.length > 0) throw new Error(`the bench policy is not valid: ${issues[0]!.message}`);
    const setCount = Math.floor(MAX_MATCH_COST_PER_SET / MAX_MATCH_COST_PER_POLICY);
    const set = Array.from({ length: setCount }, (_, i) => fill(MAX_MATCH_COST_PER_POLICY, glob, `p${i}`));
    rows.push({
      segment: length,
      wild,
      patternsPerPolicy: one.spec.rules.reduce((n, r) => n + (r.from?.userids?.length ?? 0), 0),
      policy: decide([one]),
      set: decide(set),
    });
  }
}
const worst = (key: 'policy' | 'set'): number => Math.max(...rows.map((r) => r[key].p50Ms));
console.log(
  JSON.stringify({
    budget: { perPolicy: MAX_MATCH_COST_PER_POLICY, perSet: MAX_MATCH_COST_PER_SET },
    worstP50Ms: { policy: worst('policy'), set: worst('set') },
    rows,
  }),
);
