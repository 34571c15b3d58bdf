// What the CLI tests that start the proxy on a policy file set up first: a temporary directory for
// the files and a loopback echo server for the policy to allow.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEchoServer, type Closable } from './servers.ts';

/** One policy allowing CONNECT to the echo server, then `denies` more (never matching) rules. */
export const allowEchoPolicy = (port: number, denies = 0): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: cli}
spec:
  rules:
    - {name: echo, action: Allow, to: {cidrs: ["127.0.0.1/32"], ports: ["${port}"]}}
${Array.from({ length: denies }, (_, i) => `    - {name: deny-${i}, action: Deny, to: {ports: ["${i + 1}"]}}`).join('\n')}
`;

export interface PolicyWorkspace {
  readonly dir: string;
  readonly echo: Closable;
  /** Writes `text` to `name` in the directory; returns its path. */
  write(name: string, text: string): Promise<string>;
  close(): Promise<void>;
}

export async function startPolicyWorkspace(prefix: string): Promise<PolicyWorkspace> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const echo = await startEchoServer();
  return {
    dir,
    echo,
    async write(name, text) {
      const file = path.join(dir, name);
      await writeFile(file, text);
      return file;
    },
    async close() {
      await echo.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
