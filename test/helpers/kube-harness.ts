// A real Kubernetes control plane for tests: etcd + kube-apiserver on loopback, built
// by scripts/build-tools.sh into bin/. No kube-controller-manager or scheduler runs,
// so objects are stored and validated but nothing reconciles them (no pods start,
// no default service accounts appear, deleted namespaces stay Terminating).
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cleanEnv } from './spawn.ts';

export type StaticToken = { token: string; user: string; groups: readonly string[] };

export type KubeControlPlaneOptions = {
  binDir?: string; // holds etcd and kube-apiserver; default <repo>/bin
  extraTokens?: readonly StaticToken[]; // more static bearer tokens, e.g. for RBAC tests
  extraApiServerArgs?: readonly string[];
  startTimeoutMs?: number; // bound on etcd + apiserver readiness together
};

export type KubeControlPlane = {
  server: string; // https://127.0.0.1:<port>
  kubeconfigPath: string; // admin (system:masters) kubeconfig, CA-verified
  adminToken: string;
  caPath: string; // PEM bundle that verifies the serving certificate
  // Writes a kubeconfig that authenticates with `token` (one of extraTokens).
  writeKubeconfig(token: string, name: string): string;
  /** Kills kube-apiserver (SIGKILL) and starts it again on the same port, certs and etcd. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
};

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const DEFAULT_START_TIMEOUT_MS = 90_000;
const POLL_INTERVAL_MS = 100;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 3; // a port picked free can be taken before the child binds it
const LOG_TAIL_BYTES = 2_000;

export async function startKubeControlPlane(options: KubeControlPlaneOptions = {}): Promise<KubeControlPlane> {
  const binDir = options.binDir ?? join(REPO_ROOT, 'bin');
  for (const bin of ['etcd', 'kube-apiserver']) {
    if (!existsSync(join(binDir, bin))) throw new Error(`${join(binDir, bin)} is missing: run scripts/build-tools.sh`);
  }
  const deadline = Date.now() + (options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  const dir = mkdtempSync(join(tmpdir(), 'kube-harness-'));
  const children: ChildProcess[] = [];
  // If the test process dies without stop(), don't leave servers behind.
  const killOnExit = () => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      for (const child of children.reverse()) await stopChild(child); // apiserver before etcd
      rmSync(dir, { recursive: true, force: true });
    })());
  try {
    const etcdUrl = await startEtcd(binDir, dir, deadline, children);
    const adminToken = randomBytes(24).toString('hex');
    const plane = await startApiServer(binDir, dir, deadline, children, etcdUrl, adminToken, options);
    return { ...plane, adminToken, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startEtcd(binDir: string, dir: string, deadline: number, children: ChildProcess[]): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort] = await pickFreePorts(2);
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const dataDir = join(dir, `etcd-${attempt}`);
    const child = spawnLogged(
      join(binDir, 'etcd'),
      [
        '--name=harness',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=harness=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync', // test data is thrown away: durability only costs time
        '--log-level=warn',
      ],
      join(dir, `etcd-${attempt}.log`),
    );
    children.push(child);
    const up = await waitUntil(child, deadline, async () => (await getStatus(`${clientUrl}/health`)) === 200);
    if (up) return clientUrl;
    children.pop();
    rmSync(dataDir, { recursive: true, force: true });
    if (attempt >= PORT_ATTEMPTS || !logMentionsBusyPort(dir, `etcd-${attempt}.log`)) {
      throw new Error(`etcd did not become healthy:\n${tailLog(join(dir, `etcd-${attempt}.log`))}`);
    }
  }
}

async function startApiServer(
  binDir: string,
  dir: string,
  deadline: number,
  children: ChildProcess[],
  etcdUrl: string,
  adminToken: string,
  options: KubeControlPlaneOptions,
): Promise<Omit<KubeControlPlane, 'adminToken' | 'stop'>> {
  const tokens: StaticToken[] = [
    { token: adminToken, user: 'harness-admin', groups: ['system:masters'] },
    ...(options.extraTokens ?? []),
  ];
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(tokenFile, tokens.map(formatTokenLine).join('\n') + '\n', { mode: 0o600 });
  // EC keys: instant to generate, and the apiserver signs service-account tokens with ES256.
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const saPublic = join(dir, 'sa.pub');
  const saPrivate = join(dir, 'sa.key');
  writeFileSync(saPublic, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(saPrivate, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

  for (let attempt = 1; ; attempt++) {
    const [port] = await pickFreePorts(1);
    const server = `https://127.0.0.1:${port}`;
    const certDir = join(dir, `certs-${attempt}`);
    const logPath = join(dir, `kube-apiserver-${attempt}.log`);
    const args = [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${port}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // No --tls-cert-file: the apiserver writes a self-signed CA + serving cert here.
      `--cert-dir=${certDir}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=RBAC',
      '--anonymous-auth=false',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPublic}`,
      `--service-account-signing-key-file=${saPrivate}`,
      // Only configuration: nothing ever routes to this range.
      '--service-cluster-ip-range=10.96.0.0/24',
      // The endpoint reconciler refuses a loopback advertise address; nothing routes
      // to the `kubernetes` service here anyway.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      '--v=0',
      ...(options.extraApiServerArgs ?? []),
    ];
    const child = spawnLogged(join(binDir, 'kube-apiserver'), args, logPath);
    children.push(child);
    const caPath = join(certDir, 'apiserver.crt');
    // kube-system is created by a controller inside the apiserver that /readyz does
    // not wait for; tests expect it, so it is part of "ready" here.
    const isReady = async (): Promise<boolean> =>
      existsSync(caPath) &&
      (await getStatus(`${server}/readyz`, adminToken, readFileSync(caPath))) === 200 &&
      (await getStatus(`${server}/api/v1/namespaces/kube-system`, adminToken, readFileSync(caPath))) === 200;
    const ready = await waitUntil(child, deadline, isReady);
    if (ready) {
      const writeKubeconfig = (token: string, name: string) =>
        writeKubeconfigFile(join(dir, `${name}.kubeconfig`), server, readFileSync(caPath), token, name);
      let current = child;
      // Same port, same cert dir (so the same CA) and the same etcd: clients reconnect as they
      // would to a restarted control-plane node.
      const restartApiServer = async (): Promise<void> => {
        current.kill('SIGKILL');
        await stopChild(current);
        children.splice(children.indexOf(current), 1);
        current = spawnLogged(join(binDir, 'kube-apiserver'), args, logPath);
        children.push(current);
        if (!(await waitUntil(current, Date.now() + DEFAULT_START_TIMEOUT_MS, isReady))) {
          throw new Error(`kube-apiserver did not come back:\n${tailLog(logPath)}`);
        }
      };
      return {
        server,
        caPath,
        kubeconfigPath: writeKubeconfig(adminToken, 'admin'),
        writeKubeconfig,
        restartApiServer,
      };
    }
    children.pop();
    if (attempt >= PORT_ATTEMPTS || !logMentionsBusyPort(dir, `kube-apiserver-${attempt}.log`)) {
      throw new Error(`kube-apiserver did not become ready:\n${tailLog(logPath)}`);
    }
  }
}

// token,user,uid,"group1,group2": the static token file is CSV (quotes allow commas).
function formatTokenLine({ token, user, groups }: StaticToken): string {
  return [token, user, user, `"${groups.join(',')}"`].join(',');
}

function writeKubeconfigFile(path: string, server: string, ca: Buffer, token: string, name: string): string {
  // JSON is YAML, so kubectl and @kubernetes/client-node both read it.
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters: [{ name: 'harness', cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: 'harness', user: name, namespace: 'default' } }],
    'current-context': name,
  };
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  return path;
}

function spawnLogged(command: string, args: string[], logPath: string): ChildProcess {
  const env = cleanEnv();
  const fd = openSync(logPath, 'a');
  try {
    return spawn(command, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
}

// Polls `probe` until it holds, the child exits, or the deadline passes.
async function waitUntil(child: ChildProcess, deadline: number, probe: () => Promise<boolean>): Promise<boolean> {
  let exited = child.exitCode !== null || child.signalCode !== null;
  const onExit = () => {
    exited = true;
  };
  child.once('exit', onExit);
  try {
    while (!exited && Date.now() < deadline) {
      if (await probe().catch(() => false)) return true;
      await new Promise((done) => setTimeout(done, POLL_INTERVAL_MS));
    }
    if (!exited) child.kill('SIGKILL');
    return false;
  } finally {
    child.removeListener('exit', onExit);
  }
}

function getStatus(url: string, token?: string, ca?: Buffer): Promise<number> {
  return new Promise((done, fail) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const request = url.startsWith('https:') ? httpsRequest(url, { headers, ca }) : httpRequest(url, { headers });
    request.setTimeout(2_000, () => request.destroy(new Error(`timeout: ${url}`)));
    request.on('error', fail);
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => done(response.statusCode ?? 0));
    });
    request.end();
  });
}

async function pickFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((done, fail) => {
          const server = createServer();
          server.once('error', fail);
          server.listen(0, '127.0.0.1', () => done(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

function logMentionsBusyPort(dir: string, logName: string): boolean {
  return tailLog(join(dir, logName)).includes('address already in use');
}

function tailLog(path: string): string {
  if (!existsSync(path)) return '(no log)';
  const text = readFileSync(path, 'utf8');
  return text.slice(-LOG_TAIL_BYTES);
}
