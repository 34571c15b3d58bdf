// What the attack scenarios (run inside a namespace by namespace.ts) share: the real proxy CLI
// with a policy file, a legitimate client timed end to end, and the proxy's ops endpoints.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { connectRaw, socks4Request } from '../helpers/servers.ts';
import { freePort, startCli, type CliProcess } from '../helpers/spawn.ts';

export interface RunningProxy {
  cli: CliProcess;
  port: number;
  opsPort: number;
  dir: string;
}

export async function startProxyCli(policy: string, flags: string[] = []): Promise<RunningProxy> {
  const dir = mkdtempSync(path.join(tmpdir(), 'socks4-hostile-'));
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, policy);
  const port = await freePort();
  const opsPort = await freePort();
  const cli = startCli([
    'proxy',
    '--listen',
    `127.0.0.1:${port}`,
    '--ops-listen',
    `127.0.0.1:${opsPort}`,
    '--policy-file',
    file,
    ...flags,
  ]);
  await cli.waitForOutput(/proxy listening/, 60_000);
  return { cli, port, opsPort, dir };
}

export interface LegitResult {
  reply: number | null; // the reply byte, null when none came
  ms: number; // connect → reply (and, when granted, an echo round trip)
}

/**
 * One legitimate client: a SOCKS4(a) CONNECT from 127.0.0.1, timed until its reply and, when
 * granted, until "ping" came back through the relay.
 */
export async function legitClient(
  proxyPort: number,
  destPort: number,
  options: { host?: string; userId?: string; timeoutMs?: number; ip?: string } = {},
): Promise<LegitResult> {
  const started = performance.now();
  const raw = await connectRaw(proxyPort);
  raw.socket.write(socks4Request(1, destPort, options.ip ?? '127.0.0.1', options.userId ?? 'legit', options.host));
  const reply = await raw.read(8, options.timeoutMs ?? 30_000);
  let code: number | null = reply.length === 8 ? reply[1]! : null;
  if (code === 90) {
    raw.socket.write('ping');
    const echoed = (await raw.read(4, options.timeoutMs ?? 30_000)).toString();
    if (echoed !== 'ping') code = -1; // granted but the relay did not carry data
  }
  const ms = performance.now() - started;
  raw.socket.destroy();
  return { reply: code, ms: Math.round(ms * 10) / 10 };
}

export async function readyz(opsPort: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${opsPort}/readyz`)).status;
}

/** A sample of a Prometheus metric by its full series text, e.g. 'socks4_slots_in_use{pool="pending"}'. */
export async function metric(opsPort: number, series: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

/** TCP sockets in this namespace in SYN-SENT: upstream connects still waiting for an answer. */
export function synSent(): number {
  return execFileSync('ss', ['-Htn', 'state', 'syn-sent'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim() !== '').length;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 50 ms until it holds or `ms` passed; returns the time it took, or null. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<number | null> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (await check()) return Math.round(performance.now() - started);
    await sleep(50);
  }
  return null;
}

export function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
