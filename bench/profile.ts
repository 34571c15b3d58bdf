// Profiles socks4-fleet under one benchmark workload: runs the proxy with --cpu-prof, drives it
// with the load generator, and prints where the CPU went (self time by function, the share of
// system calls, GC, Node internals and our code), next to a flame graph (SVG) and folded stacks.
//
//   scripts/node bench/profile.ts [--workload handshake|throughput|idle] [--mode embedded|redis|redis-tracing] [--seconds 5]
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildTree, foldedStacks, inclusive, renderFlameGraph, topSelf, type CpuProfile } from './lib/cpu-profile.ts';
import { ensureLoadgen, runLoadgen } from './lib/loadgen.ts';
import { benchRoot, repoRoot } from './lib/paths.ts';
import { startEmbedded, startRedisMode, type Target } from './lib/targets.ts';

const { values: args } = parseArgs({
  options: {
    workload: { type: 'string', default: 'handshake' },
    mode: { type: 'string', default: 'embedded' },
    seconds: { type: 'string', default: '5' },
    'log-level': { type: 'string', default: 'info' },
    sessions: { type: 'string', default: '1' },
    top: { type: 'string', default: '30' },
    out: { type: 'string', default: path.join(benchRoot, 'results', 'profiles') },
  },
});

const workload = args.workload;
if (!['handshake', 'throughput', 'idle'].includes(workload)) throw new Error(`--workload: ${workload}?`);
const profileDir = mkdtempSync(path.join(tmpdir(), 'socks4-bench-prof-'));
const nodeFlags = ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];

ensureLoadgen();
let target: Target;
// Session lines (default level info) go to a file: the proxy pays for formatting and write(2).
const logSink = openSync(path.join(profileDir, 'proxy.log'), 'a');
const fleetOptions = { nodeFlags, logLevel: args['log-level'], stdoutFd: logSink };
if (args.mode === 'embedded') target = await startEmbedded(fleetOptions);
else if (args.mode === 'redis' || args.mode === 'redis-tracing')
  target = await startRedisMode(args.mode === 'redis-tracing', fleetOptions);
else throw new Error(`--mode: ${args.mode}?`);
if (target.unavailable !== null) throw new Error(`${args.mode}: ${target.unavailable}`);

let result: unknown;
try {
  const seconds = `${args.seconds}s`;
  if (workload === 'handshake')
    result = await runLoadgen('handshake', target.loadgen, { clients: 50, duration: seconds, warmup: '500ms' });
  else if (workload === 'throughput')
    result = await runLoadgen('throughput', target.loadgen, {
      sessions: Number(args.sessions),
      duration: seconds,
      warmup: '500ms',
    });
  else result = await runLoadgen('idle', target.loadgen, { sessions: 5000, settle: '1s' });
} finally {
  await target.stop(); // SIGTERM: the proxy drains and exits, and Node writes the profile
}

const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
if (file === undefined) throw new Error(`no profile written in ${profileDir}`);
const profile = JSON.parse(readFileSync(path.join(profileDir, file), 'utf8')) as CpuProfile;
rmSync(profileDir, { recursive: true, force: true });
const tree = buildTree(profile);
const share = (micros: number): string => `${((100 * micros) / tree.total).toFixed(1).padStart(5)}%`;

const lines: string[] = [];
lines.push(`workload ${workload}, mode ${args.mode}: ${JSON.stringify(result)}`);
lines.push(`busy CPU in profile: ${(tree.total / 1e6).toFixed(2)} s (idle left out)`);
lines.push('');
lines.push('by kind (inclusive):');
for (const [what, fragment] of [
  ['our code (src/)', ' src/'],
  ['garbage collector', '(garbage collector)'],
  ['write syscalls (writeBuffer/writev)', 'writeBuffer'],
  ['connect syscalls', 'internalConnect'],
  ['close', 'close '],
  ['diagnostics_channel subscribers', 'telemetry/'],
  ['prom-client', 'prom-client'],
  ['OpenTelemetry', '@opentelemetry'],
  ['ioredis', 'ioredis'],
] as const) {
  lines.push(`  ${share(inclusive(tree, fragment))}  ${what}`);
}
lines.push('');
lines.push(`top ${args.top} by self time:`);
for (const row of topSelf(tree, Number(args.top))) lines.push(`  ${share(row.micros)}  ${row.name}`);
const report = lines.join('\n');

mkdirSync(args.out, { recursive: true });
const base = path.join(args.out, `${workload}-${args.mode}`);
writeFileSync(`${base}.txt`, `${report}\n`);
writeFileSync(`${base}.folded`, foldedStacks(tree));
writeFileSync(`${base}.svg`, renderFlameGraph(tree, `socks4-fleet ${args.mode}, ${workload} workload`));
process.stdout.write(
  `${report}\n\nflame graph: ${path.relative(repoRoot, `${base}.svg`)}  folded stacks: ${path.relative(repoRoot, `${base}.folded`)}\n`,
);
