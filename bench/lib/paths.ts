// Where things are, independent of the directory `make bench` runs from.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(benchRoot, '..');
export const cliPath = path.join(repoRoot, 'src', 'cli', 'main.ts');
/** The launcher users run (package.json `bin`): the CLI with the Node flags the product ships with. */
export const launcherPath = path.join(repoRoot, 'scripts', 'socks4-fleet');

/** The environment of every spawned Node: no NODE_EXTRA_CA_CERTS (parsing it costs seconds). */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_TEST_CONTEXT;
  return env;
}
