// What the proxy allocates per session, by function: the handshake workload (50 clients, CONNECT
// → 64-byte echo → close) against the embedded proxy with V8's sampling heap profiler preloaded
// (bench/lib/heap-sampler.ts), freed objects included. Allocation drives the young-generation
// collections that were 10-20 % of the handshake profile (bench/README.md, "third pass").
//
//   scripts/node bench/alloc-profile.ts [--seconds 5] [--top 30] [--checkout DIR]
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureLoadgen, runLoadgen, type HandshakeResult } from './lib/loadgen.ts';
import { benchRoot } from './lib/paths.ts';
import { startEmbedded } from './lib/targets.ts';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    top: { type: 'string', default: '30' },
    checkout: { type: 'string' },
  },
});

ensureLoadgen();
const dir = mkdtempSync(path.join(tmpdir(), 'socks4-bench-alloc-'));
const out = path.join(dir, 'heap.json');
process.env.SOCKS4_HEAP_SAMPLE_OUT = out; // the proxy inherits it
const target = await startEmbedded({
  nodeFlags: [`--import=${path.join(benchRoot, 'lib', 'heap-sampler.ts')}`],
  logLevel: 'info', // one session line each, into a file, as users run it
  stdoutFd: openSync(path.join(dir, 'proxy.log'), 'a'),
  ...(args.checkout === undefined ? {} : { checkout: args.checkout }),
});
let result: HandshakeResult;
try {
  process.kill(target.loadgen.pids[0]!, 'SIGUSR2'); // ready: sampling starts now
  result = await runLoadgen<HandshakeResult>('handshake', target.loadgen, {
    clients: 50,
    duration: `${args.seconds}s`,
    warmup: '500ms',
  });
} finally {
  await target.stop(); // SIGTERM: the proxy drains and exits, and the sampler writes its profile
}
const root = (JSON.parse(readFileSync(out, 'utf8')) as { head: HeapNode }).head;
rmSync(dir, { recursive: true, force: true });

// Each sample goes to its own frame and to the nearest frame of our code or a dependency.
const self = new Map<string, number>();
const nearest = new Map<string, number>();
let total = 0;
const walk = (node: HeapNode, ours: string): void => {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${lineNumber + 1}`;
  const owner = /\/(src|node_modules)\//.test(url) ? name : ours;
  if (node.selfSize > 0) {
    total += node.selfSize;
    self.set(name, (self.get(name) ?? 0) + node.selfSize);
    nearest.set(owner, (nearest.get(owner) ?? 0) + node.selfSize);
  }
  for (const child of node.children) walk(child, owner);
};
walk(root, '(Node internals only)');
// The window holds the warm-up too (sampling starts before it); sessions = cycles + warm-up's.
const sessions = result.cycles * (1 + 0.5 / Number(args.seconds));
const perSession = (bytes: number): string => `${(bytes / sessions).toFixed(0).padStart(7)} B`;
const lines = [`${result.cycles} sessions measured; ${perSession(total).trim()} allocated per session`];
lines.push('', 'by allocating function, per session:');
for (const [name, bytes] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top)))
  lines.push(`${perSession(bytes)}  ${name}`);
lines.push('', 'by nearest frame of src/ or a dependency, per session:');
for (const [name, bytes] of [...nearest].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top)))
  lines.push(`${perSession(bytes)}  ${name}`);
process.stdout.write(`${lines.join('\n')}\n`);
