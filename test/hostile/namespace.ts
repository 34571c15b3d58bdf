// Attack scenarios run inside private namespaces the test makes: a network namespace (its own
// loopback, and 10.77.0.0/24 routed into nothing, so connects to it wait for SYN-ACKs that never
// come), a PID namespace (when the scenario exits, every process it started dies with it), and
// for DNS a mount namespace with /etc/resolv.conf and /etc/hosts bind-mounted over. No packet
// leaves the namespace.
//
// The scenario is a Node script; it prints one line `RESULT <json>` with what it measured, and
// the test asserts on that.
import { spawn } from 'node:child_process';
import { cleanEnv, repoRoot } from '../helpers/spawn.ts';

/** Routed to the loopback device but assigned to nobody: SYNs to it vanish (no RST, no ICMP). */
export const BLACK_HOLE_NET = '10.77.0.0/24';
export const BLACK_HOLE = '10.77.0.2';

export interface NamespaceRun<T> {
  result: T;
  output: string;
}

export async function runInNamespace<T>(
  script: string,
  input: unknown,
  options: { mounts?: Record<string, string>; timeoutMs?: number } = {},
): Promise<NamespaceRun<T>> {
  const mounts = Object.entries(options.mounts ?? {});
  const setup = [
    'set -e',
    'ip link set lo up',
    `ip route add ${BLACK_HOLE_NET} dev lo`,
    ...mounts.map(([target, source]) => `mount --bind '${source}' '${target}'`),
    'exec "$@"',
  ].join('\n');
  const args = [
    '-n',
    '-p',
    '-f',
    '--kill-child',
    ...(mounts.length > 0 ? ['-m'] : []),
    '--',
    'sh',
    '-c',
    setup,
    'sh',
    process.execPath,
    script,
    JSON.stringify(input),
  ];
  const child = spawn('unshare', args, { cwd: repoRoot, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined)
    throw new Error(`scenario ${script} exited ${code} without a result:\n${output.slice(-4000)}`);
  return { result: JSON.parse(line.slice('RESULT '.length)) as T, output };
}
