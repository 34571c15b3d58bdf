// The Go load generator (bench/loadgen): built on demand with `go build`, run once per
// measurement, one JSON object back. README.md says why it is Go and not Node.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { benchRoot, repoRoot } from './paths.ts';

const SOURCE_DIR = path.join(benchRoot, 'loadgen');
export const LOADGEN_BINARY = path.join(repoRoot, '.cache', 'bench', 'loadgen');
/** A measurement that has not answered in this long is broken, not slow. */
const RUN_TIMEOUT_MS = 120_000;

export interface CpuReport {
  proxyCpuSeconds: number;
  auxCpuSeconds: number;
  loadgenCores: number;
  proxyCores: number;
  foreignCores: number;
  stealPercent: number;
}

export interface HandshakeResult {
  cycles: number;
  errors: number;
  firstError?: string;
  windowSeconds: number;
  cyclesPerSecond: number;
  handshakeP50Us: number;
  handshakeP99Us: number;
  cycleP50Us: number;
  cycleP99Us: number;
  proxyCpuUsPerSession: number;
  cpu: CpuReport;
}

export interface ThroughputResult {
  sessions: number;
  bytes: number;
  windowSeconds: number;
  mibPerSecond: number;
  proxyCpuSecondsPerGiB: number;
  errors: number;
  firstError?: string;
  cpu: CpuReport;
}

export interface MemorySample {
  rssKiB: number;
  pssKiB: number;
  processes: number;
}

export interface IdleResult {
  sessions: number;
  opened: number;
  errors: number;
  firstError?: string;
  openSeconds: number;
  before: MemorySample;
  halfHeld: MemorySample;
  held: MemorySample;
  afterClose: MemorySample;
  rssBytesPerSession: number;
  pssBytesPerSession: number;
  marginalRssBytesPerSession: number;
  marginalPssBytesPerSession: number;
}

function newestMtime(dir: string): number {
  return Math.max(...readdirSync(dir).map((name) => statSync(path.join(dir, name)).mtimeMs));
}

/** Builds the binary when it is missing or older than its sources; returns its path. */
export function ensureLoadgen(): string {
  let built = 0;
  try {
    built = statSync(LOADGEN_BINARY).mtimeMs;
  } catch {
    built = 0;
  }
  if (built < newestMtime(SOURCE_DIR)) {
    mkdirSync(path.dirname(LOADGEN_BINARY), { recursive: true });
    // GOTOOLCHAIN=local: never download a toolchain; the module has no dependencies to fetch.
    execFileSync('go', ['build', '-o', LOADGEN_BINARY, '.'], {
      cwd: SOURCE_DIR,
      env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
  return LOADGEN_BINARY;
}

export interface LoadgenTarget {
  /** HOST:PORT of the SOCKS4 proxy; null = direct. */
  readonly proxy: string | null;
  readonly pids: readonly number[];
  readonly auxPids: readonly number[];
}

export function runLoadgen<T>(
  mode: 'handshake' | 'throughput' | 'idle',
  target: LoadgenTarget,
  flags: Record<string, string | number>,
): Promise<T> {
  const args: string[] = [mode];
  if (target.proxy !== null) args.push('-proxy', target.proxy);
  if (target.pids.length > 0) args.push('-pids', target.pids.join(','));
  if (target.auxPids.length > 0) args.push('-aux', target.auxPids.join(','));
  for (const [name, value] of Object.entries(flags)) args.push(`-${name}`, String(value));
  return new Promise((resolve, reject) => {
    const child = spawn(LOADGEN_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`loadgen ${args.join(' ')} failed (${code ?? signal}): ${stderr}`));
      try {
        resolve(JSON.parse(stdout) as T);
      } catch (error) {
        reject(new Error(`loadgen printed no JSON: ${stdout}${stderr}`, { cause: error }));
      }
    });
  });
}
