// The built container image, as a container runtime would see it: `make image`'s archive (built
// here when dist/ lacks it or holds another commit's), its OCI layout read and its layers unpacked
// in order into a root filesystem; and a sandbox that runs the image's entry point from that root
// read-only, as the image's user, in a network namespace of the test's own (bwrap, setpriv,
// nsenter and unshare: no container engine runs here).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/spawn.ts';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
export interface ImageConfig {
  created?: string;
  history?: { created?: string }[];
  architecture: string;
  os: string;
  config: {
    Entrypoint: string[];
    Cmd?: string[];
    Env: string[];
    User: string;
    WorkingDir: string;
    Labels: Record<string, string>;
    ExposedPorts?: Record<string, object>;
  };
}

export interface UnpackedImage {
  archive: string;
  dir: string; // remove when done
  layout: string;
  rootfs: string;
  index: { manifests: Descriptor[] };
  manifest: { config: Descriptor; layers: Descriptor[] };
  config: ImageConfig;
  blob(digest: string): string; // path of a blob in the layout
}

export const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;
export const archivePath = path.join(repoRoot, 'dist', `socks4-fleet-${version}.oci.tar`);
export const sbomPath = path.join(repoRoot, 'dist', `socks4-fleet-${version}.cdx.json`);
const head = (): string => execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();

/** Unpacks the archive's layout, and with `rootfs` its layers in order, into a fresh directory. */
export function unpackImage(withRootfs = true): UnpackedImage {
  const dir = mkdtempSync(path.join(tmpdir(), 'image-'));
  chmodSync(dir, 0o755); // the sandbox's user must reach the root filesystem to mount it
  const layout = path.join(dir, 'layout');
  const rootfs = path.join(dir, 'rootfs');
  mkdirSync(layout);
  mkdirSync(rootfs, { mode: 0o755 });
  execFileSync('tar', ['-xf', archivePath, '-C', layout]);
  const blob = (digest: string): string => path.join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as UnpackedImage['index'];
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as UnpackedImage['manifest'];
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as ImageConfig;
  // As root, tar keeps the layers' owners (0:0) and modes, as a container runtime does.
  if (withRootfs)
    for (const layer of manifest.layers)
      execFileSync('tar', ['--numeric-owner', '-xzf', blob(layer.digest), '-C', rootfs]);
  return { archive: archivePath, dir, layout, rootfs, index, manifest, config, blob };
}

// What the image is made of: an archive older than any of these is stale (as make would judge).
const inputs = [
  'src',
  'operator',
  'package.json',
  'package-lock.json',
  'deploy/image',
  'scripts/build-image.sh',
  'scripts/image',
  'scripts/socks4-fleet',
];
const newestInput = (): number =>
  Math.max(
    ...execFileSync('git', ['ls-files', '-z', '--', ...inputs], { cwd: repoRoot, encoding: 'utf8' })
      .split('\0')
      .filter((file) => file !== '' && existsSync(path.join(repoRoot, file)))
      .map((file) => statSync(path.join(repoRoot, file)).mtimeMs),
  );

/** dist/'s image, built first (scripts/build-image.sh) when missing, stale, or another commit's. */
export function ensureImage(): UnpackedImage {
  if (existsSync(archivePath) && statSync(archivePath).mtimeMs > newestInput()) {
    const image = unpackImage(false);
    rmSync(image.dir, { recursive: true, force: true });
    if (image.config.config.Labels['org.opencontainers.image.revision'] === head()) return unpackImage();
  }
  buildImage();
  return unpackImage();
}

/** Runs scripts/build-image.sh (`make image`) with `extraEnv` (IMAGE_OUT: another output folder). */
export function buildImage(extraEnv: Record<string, string> = {}): void {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...extraEnv,
    PATH: [path.dirname(process.execPath), path.join(repoRoot, 'bin'), process.env.PATH].join(':'),
  };
  delete env.NODE_TEST_CONTEXT;
  const build = spawnSync(path.join(repoRoot, 'scripts', 'build-image.sh'), [], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: 540_000,
  });
  if (build.status !== 0)
    throw new Error(`scripts/build-image.sh failed (${build.status ?? build.signal}):\n${build.stdout}${build.stderr}`);
}

/** A network namespace of the test's own, held open by a `sleep` the test stops by its pid. */
export interface NetNamespace {
  pid: number;
  run(argv: string[]): string[];
  close(): void;
}

export async function netNamespace(): Promise<NetNamespace> {
  const holder = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
  const pid = holder.pid!;
  const ours = readlinkSync('/proc/self/ns/net');
  // unshare execs sleep once the namespace exists: bounded wait for /proc to show it.
  for (let i = 0; i < 200 && readNs(pid) === ours; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  if (readNs(pid) === ours || readNs(pid) === undefined)
    throw new Error('unshare --net did not make a network namespace');
  const run = (argv: string[]): string[] => ['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...argv];
  const [cmd, ...args] = run(['ip', 'link', 'set', 'lo', 'up']);
  execFileSync(cmd!, args);
  return { pid, run, close: () => void holder.kill('SIGKILL') };
}

function readNs(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/**
 * argv running `args` through the image's entry point (or a pod's `command`) in `ns`: the root filesystem read-only,
 * an empty tmpfs on /tmp (the chart mounts one), `files` bound read-only into it, only the image's
 * environment, as the image's numeric user (setpriv drops root before bwrap; bwrap's user
 * namespace maps that user to itself, so the image's root-owned files stay someone else's).
 */
export function sandboxArgv(
  image: UnpackedImage,
  ns: NetNamespace,
  args: string[],
  files: Record<string, string> = {},
  env: Record<string, string> = {},
  command = image.config.config.Entrypoint,
): string[] {
  const [uid, gid] = image.config.config.User.split(':');
  const environment = [
    ...image.config.config.Env.map((entry) => entry.split(/=(.*)/s).slice(0, 2) as [string, string]),
    ...Object.entries(env),
  ];
  return ns.run([
    'setpriv',
    `--reuid=${uid}`,
    `--regid=${gid ?? uid}`,
    '--clear-groups',
    '--',
    'bwrap',
    '--ro-bind',
    image.rootfs,
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    '--tmpfs',
    '/tmp',
    ...Object.entries(files).flatMap(([target, source]) => ['--ro-bind', source, target]),
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--die-with-parent',
    '--new-session',
    '--clearenv',
    ...environment.flatMap(([key, value]) => ['--setenv', key, value]),
    '--chdir',
    image.config.config.WorkingDir,
    '--',
    ...command,
    ...args, // a pod's `command` replaces the entry point; bwrap looks it up in the image's PATH
  ]);
}

export interface Running {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
  stop(): void;
}

export function start(argv: string[]): Running {
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const waiter of waiters) waiter();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      resolve(code);
      for (const waiter of waiters) waiter();
    }),
  );
  return {
    child,
    output: () => output,
    exited,
    stop: () => void child.kill('SIGKILL'), // bwrap --die-with-parent takes the entry point along
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const match = pattern.exec(output);
          if (match === null && child.exitCode === null) return;
          clearTimeout(timer);
          waiters.delete(check);
          if (match !== null) resolve(match);
          else reject(new Error(`exited (${child.exitCode}) before printing ${pattern}:\n${output}`));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

/** Every process under `pid` (by /proc's parent links), with its uid set and command line. */
export function descendants(pid: number): { pid: number; uids: string; cmdline: string[] }[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const isUnder = (candidate: number): boolean => {
    for (let p = parents.get(candidate), hops = 0; p !== undefined && hops < 64; p = parents.get(p), hops++)
      if (p === pid) return true;
    return false;
  };
  return [...parents.keys()].filter(isUnder).flatMap((child) => {
    try {
      const status = readFileSync(`/proc/${child}/status`, 'utf8');
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim() ?? '';
      return [
        { pid: child, uids, cmdline: readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').filter(Boolean) },
      ];
    } catch {
      return []; // exited meanwhile
    }
  });
}

const IMPORT_PATTERNS = [
  /(?:^|\n)\s*import\s+(?!type\s)[^;]*?\bfrom\s+'([^']+)'/g, // import x from '...'
  /(?:^|\n)\s*export\s+(?!type\s)[^;]*?\bfrom\s+'([^']+)'/g, // export { x } from '...'
  /(?:^|\n)\s*import\s+'([^']+)'/g, // import '...'
  /\bimport\(\s*'([^']+)'\s*\)/g, // import('...')
];

/** Every file reachable from `entry` through runtime imports (a missing one throws), and the bare specifiers met. */
export function importClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  for (let next = queue.pop(); next !== undefined && files.size < 5_000; next = queue.pop()) {
    if (files.has(next)) continue;
    files.add(next);
    for (const pattern of IMPORT_PATTERNS) {
      for (const match of readFileSync(next, 'utf8').matchAll(pattern)) {
        const specifier = match[1]!;
        if (specifier.startsWith('.')) queue.push(path.resolve(path.dirname(next), specifier));
        else packages.add(specifier);
      }
    }
  }
  return { files, packages };
}
