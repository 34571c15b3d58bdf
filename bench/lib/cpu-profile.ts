// Reading V8 .cpuprofile files (node --cpu-prof): self time by function, time by category, folded
// stacks (the input format of flamegraph.pl and speedscope) and a self-contained SVG flame graph.
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function frameName(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  if (f.url === '') return name;
  const file = f.url.startsWith('file://') ? path.relative(process.cwd(), new URL(f.url).pathname) : f.url;
  return `${name} ${file}:${f.lineNumber + 1}`;
}

/** Microseconds of samples per node id. */
function selfTimes(profile: CpuProfile): Map<number, number> {
  const out = new Map<number, number>();
  profile.samples.forEach((id, i) => out.set(id, (out.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  return out;
}

export interface FlameNode {
  name: string;
  self: number;
  total: number;
  children: Map<string, FlameNode>;
}

/** The call tree with (idle) and (program) left out: only time the process was working. */
export function buildTree(profile: CpuProfile): FlameNode {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = selfTimes(profile);
  const root: FlameNode = { name: 'all', self: 0, total: 0, children: new Map() };
  const visit = (id: number, into: FlameNode): void => {
    const node = byId.get(id);
    if (node === undefined) return;
    const name = frameName(node.callFrame);
    if (name === '(idle)' || name === '(program)') return;
    let child = into.children.get(name);
    if (child === undefined) into.children.set(name, (child = { name, self: 0, total: 0, children: new Map() }));
    child.self += self.get(id) ?? 0;
    for (const c of node.children ?? []) visit(c, child);
  };
  const top = profile.nodes[0];
  if (top !== undefined) for (const c of top.children ?? []) visit(c, root);
  const sum = (n: FlameNode): number => {
    n.total = n.self;
    for (const c of n.children.values()) n.total += sum(c);
    return n.total;
  };
  sum(root);
  return root;
}

export function topSelf(tree: FlameNode, count: number): { name: string; micros: number; share: number }[] {
  const totals = new Map<string, number>();
  const walk = (n: FlameNode): void => {
    if (n.self > 0) totals.set(n.name, (totals.get(n.name) ?? 0) + n.self);
    for (const c of n.children.values()) walk(c);
  };
  walk(tree);
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, micros]) => ({ name, micros, share: micros / tree.total }));
}

/** Inclusive time of every frame whose name contains `fragment` (counted once per stack). */
export function inclusive(tree: FlameNode, fragment: string): number {
  let total = 0;
  const walk = (n: FlameNode): void => {
    if (n.name.includes(fragment)) {
      total += n.total;
      return;
    }
    for (const c of n.children.values()) walk(c);
  };
  walk(tree);
  return total;
}

export function foldedStacks(tree: FlameNode): string {
  const lines: string[] = [];
  const walk = (n: FlameNode, stack: string[]): void => {
    const here = [...stack, n.name.replaceAll(';', ',')];
    if (n.self > 0) lines.push(`${here.join(';')} ${Math.round(n.self)}`);
    for (const c of n.children.values()) walk(c, here);
  };
  for (const c of tree.children.values()) walk(c, []);
  return `${lines.join('\n')}\n`;
}

// biome-ignore lint/suspicious/noShadowRestrictedNames: the deprecated global escape() is never used here
const escape = (s: string): string =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

function colorFor(name: string): string {
  if (name.includes('src/')) return 'hsl(30, 85%, 60%)'; // ours
  if (name.includes('node_modules')) return 'hsl(280, 50%, 70%)';
  if (name.startsWith('(garbage collector)')) return 'hsl(0, 70%, 60%)';
  if (name.includes('node:') || name.includes('internal/')) return 'hsl(200, 60%, 65%)';
  return 'hsl(50, 70%, 60%)'; // native, syscalls
}

/** An icicle flame graph: root on top, width = share of busy CPU time; hover for names. */
export function renderFlameGraph(tree: FlameNode, title: string): string {
  const width = 1200;
  const rowHeight = 16;
  const rects: string[] = [];
  let depthMax = 0;
  const draw = (n: FlameNode, x: number, depth: number, scale: number): void => {
    const w = n.total * scale;
    if (w < 0.5) return;
    depthMax = Math.max(depthMax, depth);
    const y = 40 + depth * rowHeight;
    const pct = ((100 * n.total) / Math.max(1, tree.total)).toFixed(2);
    const label = w > 40 ? escape(n.name.slice(0, Math.floor(w / 6.5))) : '';
    rects.push(
      `<g><title>${escape(n.name)} (${pct}%)</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 1}" fill="${colorFor(n.name)}"/><text x="${(x + 2).toFixed(1)}" y="${y + 11}" font-size="10">${label}</text></g>`,
    );
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => b.total - a.total)) {
      draw(c, cx, depth + 1, scale);
      cx += c.total * scale;
    }
  };
  draw(tree, 0, 0, width / Math.max(1, tree.total));
  const height = 40 + (depthMax + 1) * rowHeight + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace">\n<rect width="100%" height="100%" fill="#fff"/>\n<text x="4" y="20" font-size="14" font-family="sans-serif">${escape(title)}</text>\n<text x="4" y="34" font-size="11" font-family="sans-serif" fill="#555">orange: src/ (ours); blue: Node internals; yellow: native and system calls; red: GC; idle left out</text>\n${rects.join('\n')}\n</svg>\n`;
}
