// Running helm (with the helm-unittest plugin) and kubectl from bin/ (built by `make tools`).
// Helm's config, cache and data homes point into a directory the caller owns, so tests never
// read or write the machine's ~/.config/helm.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cleanEnv, repoRoot } from '../helpers/spawn.ts';

export const binDir = path.join(repoRoot, 'bin');
export const chartDir = path.join(repoRoot, 'charts', 'socks4-fleet');
const DEFAULT_TIMEOUT_MS = 120_000;

export type ToolResult = { code: number | null; stdout: string; stderr: string };
export type ToolOptions = { env?: Record<string, string>; input?: string; timeoutMs?: number };

/** Environment for helm: the plugin folder from bin/, and all state under `home`. */
export function helmEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HELM_PLUGINS: path.join(binDir, 'helm-plugins'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_DATA_HOME: path.join(home, 'data'),
    ...extra,
  };
}

export function requireTools(...names: string[]): void {
  for (const name of names) {
    if (!existsSync(path.join(binDir, name))) throw new Error(`${path.join(binDir, name)} is missing: run make tools`);
  }
}

/** Runs bin/<name> to completion (bounded by timeoutMs); never throws on a non-zero exit. */
export function runTool(name: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(binDir, name), args, {
      cwd: repoRoot,
      env: cleanEnv(options.env ?? {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Like runTool, but a non-zero exit is an error carrying the output. */
export async function mustRun(name: string, args: readonly string[], options: ToolOptions = {}): Promise<string> {
  const result = await runTool(name, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${name} ${args.join(' ')} exited ${result.code}:\n${result.stderr}\n${result.stdout}`.slice(0, 8_000),
    );
  }
  return result.stdout;
}
