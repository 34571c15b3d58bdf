// The kube harness drives the real etcd + kube-apiserver built by scripts/build-tools.sh.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startKubeControlPlane, type KubeControlPlane } from '../helpers/kube-harness.ts';
import { cleanEnv } from '../helpers/spawn.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const BIN_DIR = join(REPO_ROOT, 'bin');
const VIEWER = { token: 'viewer-token-for-harness-test', user: 'viewer', groups: ['harness:viewers'] } as const;

// The pin lives in the wrapper module; the built binaries must report it.
const PINNED_KUBE_VERSION = /^\s*k8s\.io\/kubernetes (v\S+)/m.exec(
  readFileSync(join(REPO_ROOT, 'tools/kubernetes/go.mod'), 'utf8'),
)?.[1];

let plane: KubeControlPlane;

async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  const env = cleanEnv();
  delete env.KUBECONFIG;
  const { stdout } = await promisify(execFile)(join(BIN_DIR, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {
    env,
    timeout: 30_000,
  });
  return stdout;
}

before(async () => {
  const started = performance.now();
  plane = await startKubeControlPlane({ binDir: BIN_DIR, extraTokens: [VIEWER] });
  console.log(`kube harness ready in ${Math.round(performance.now() - started)} ms at ${plane.server}`);
});

after(async () => {
  await plane?.stop();
});

test('kubectl lists the namespaces the apiserver bootstraps', async () => {
  const names = (await kubectl(plane.kubeconfigPath, 'get', 'namespaces', '-o', 'name')).split('\n');
  assert.ok(names.includes('namespace/default'), names.join(' '));
  assert.ok(names.includes('namespace/kube-system'), names.join(' '));
});

test('/version reports the pinned Kubernetes release', async () => {
  assert.match(PINNED_KUBE_VERSION ?? '', /^v1\.\d+\.\d+$/);
  const response = await fetchWithCa(`${plane.server}/version`, plane.adminToken);
  const version = JSON.parse(response) as { gitVersion: string; major: string; minor: string };
  assert.equal(version.gitVersion, PINNED_KUBE_VERSION);
  assert.equal(`v${version.major}.${version.minor}`, PINNED_KUBE_VERSION?.replace(/\.\d+$/, ''));
});

test('the admin creates a namespace that then reads back Active', async () => {
  await kubectl(plane.kubeconfigPath, 'create', 'namespace', 'harness-created');
  const namespace = JSON.parse(
    await kubectl(plane.kubeconfigPath, 'get', 'namespace', 'harness-created', '-o', 'json'),
  );
  assert.equal(namespace.status.phase, 'Active');
});

test('an extra static token authenticates but RBAC grants it nothing', async () => {
  const kubeconfig = plane.writeKubeconfig(VIEWER.token, 'viewer');
  const whoami = JSON.parse(await kubectl(kubeconfig, 'auth', 'whoami', '-o', 'json'));
  assert.equal(whoami.status.userInfo.username, VIEWER.user);
  assert.ok(whoami.status.userInfo.groups.includes(VIEWER.groups[0]));
  await assert.rejects(kubectl(kubeconfig, 'get', 'namespaces'), /forbidden/i);
});

test('service-account tokens are signed with the generated key and accepted', async () => {
  await kubectl(plane.kubeconfigPath, 'create', 'serviceaccount', 'robot', '-n', 'default');
  const token = (await kubectl(plane.kubeconfigPath, 'create', 'token', 'robot', '-n', 'default')).trim();
  const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8'));
  assert.equal(header.alg, 'ES256');
  const kubeconfig = plane.writeKubeconfig(token, 'robot');
  const whoami = JSON.parse(await kubectl(kubeconfig, 'auth', 'whoami', '-o', 'json'));
  assert.equal(whoami.status.userInfo.username, 'system:serviceaccount:default:robot');
});

// Last: it stops the shared plane (after() then finds it already stopped).
test('stop ends both servers and removes the temporary files', async () => {
  const port = Number(new URL(plane.server).port);
  await plane.stop();
  assert.equal(existsSync(plane.kubeconfigPath), false);
  await assert.rejects(
    new Promise((done, fail) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        done(undefined);
      });
      socket.once('error', fail);
    }),
    /ECONNREFUSED/,
  );
});

function fetchWithCa(url: string, token: string): Promise<string> {
  return new Promise((done, fail) => {
    const req = request(
      url,
      { ca: readFileSync(plane.caPath), headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => (res.statusCode === 200 ? done(body) : fail(new Error(`${res.statusCode}: ${body}`))));
      },
    );
    req.on('error', fail);
    req.end();
  });
}
