// The chart end to end on a real kube-apiserver + etcd (no kubelet: pods are admitted, never run).
// 1. helm install succeeds and every object passes the server's strict validation;
// 2. every pod template the chart can render is admitted in a namespace that enforces the
//    `restricted` Pod Security Standard;
// 3. the operator (as a local process, with the chart's ServiceAccount token and the chart's own
//    command line) and two proxies (the chart's command line) on a real Redis: a policy applied
//    with kubectl turns Ready, curl through both proxies is allowed and refused by it, and an edit
//    flips both; a proxy rendered for an external Redis gets the URL from its Secret's env, not
//    its command line; the helm test pod's script does its SOCKS4 CONNECT against them;
// 4. helm uninstall leaves the CRD and the policies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startKubeControlPlane, type KubeControlPlane } from '../helpers/kube-harness.ts';
import { sendCommands, startRedis, type RedisServer } from '../helpers/redis.ts';
import type { Closable } from '../helpers/servers.ts';
import { cleanEnv, freePort, startCli, type CliProcess } from '../helpers/spawn.ts';
import { containerArgs, containerEnv, type Container } from './local-pod.ts';
import { chartDir, helmEnv, mustRun, requireTools, runTool } from './tools.ts';

const NS = 'fleet';
const RELEASE = 'e2e';
const FULLNAME = `${RELEASE}-socks4-fleet`;
const POLICY = 'e2e-web';
const fixtures = path.join(import.meta.dirname, 'fixtures');
const WAIT_MS = 45_000;
const POLL_MS = 200;

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } } & Partial<PodSpec>;
};
type PodSpec = { containers: Container[]; [key: string]: unknown };

let plane: KubeControlPlane;
let redis: RedisServer;
let home: string;
let manifest: K8sObject[] = [];
/** The bundled Redis password the release generated; the local Redis requires it once read. */
let redisPassword = '';
const redisSecrets = (): Record<string, string> => ({ [`${FULLNAME}-redis-auth/password`]: redisPassword });
const processes: CliProcess[] = [];
const upstreams: Closable[] = [];
const started = Date.now();

const kubectl = (...args: string[]) => mustRun('kubectl', ['--kubeconfig', plane.kubeconfigPath, ...args]);
const kubectlIn = (input: string, ...args: string[]) =>
  mustRun('kubectl', ['--kubeconfig', plane.kubeconfigPath, ...args], { input });
const helm = (...args: string[]) =>
  runTool('helm', [...args, '--kubeconfig', plane.kubeconfigPath], { env: helmEnv(home) });
const parseManifest = (text: string): K8sObject[] =>
  parseAllDocuments(text)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((doc): doc is K8sObject => doc !== null);
const redisUrlWithPassword = (): string => redis.url.replace('redis://', `redis://:${redisPassword}@`);
const deployment = (component: string): K8sObject => {
  const found = manifest.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === `${FULLNAME}-${component}`);
  assert.ok(found, `the release has a ${component} Deployment`);
  return found;
};

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
}

before(async () => {
  requireTools('helm', 'kubectl', 'etcd', 'kube-apiserver');
  home = mkdtempSync(path.join(tmpdir(), 'chart-e2e-'));
  [plane, redis] = await Promise.all([startKubeControlPlane(), startRedis()]);
  await kubectl('create', 'namespace', NS);
  await kubectl(
    'label',
    'namespace',
    NS,
    'pod-security.kubernetes.io/enforce=restricted',
    'pod-security.kubernetes.io/enforce-version=latest',
  );
  // The fixtures name a PriorityClass; the Priority admission plugin refuses pods whose class is unknown.
  await kubectl('create', 'priorityclass', 'socks4-fleet-e2e', '--value=1000');
});

after(async () => {
  await Promise.all(processes.map((child) => child.stop('SIGKILL')));
  await Promise.all(upstreams.map((server) => server.close()));
  await Promise.all([plane?.stop(), redis?.stop()]);
  if (home !== undefined) rmSync(home, { recursive: true, force: true });
  console.log(`chart end-to-end: ${((Date.now() - started) / 1000).toFixed(1)} s in total`);
});

describe('the chart on a real API server', () => {
  test('every rendered object passes strict server-side validation', async () => {
    // The defaults too: one operator replica, without leader election (Recreate, no Lease Role).
    for (const values of [null, 'e2e.values.yaml', 'all-features.values.yaml']) {
      const valuesArgs = values === null ? [] : ['-f', path.join(fixtures, values)];
      const rendered = await mustRun('helm', ['template', RELEASE, chartDir, '-n', NS, ...valuesArgs], {
        env: helmEnv(home),
      });
      // The bare API server has no ServiceMonitor API (its absence is tested below); the test
      // Pod needs the release's ServiceAccount to exist (it is admitted after the install).
      const objects = parseManifest(rendered).filter((doc) => doc.kind !== 'ServiceMonitor' && doc.kind !== 'Pod');
      const file = path.join(home, `render-${values ?? 'defaults'}.json`);
      writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
      const out = await kubectl('create', '--dry-run=server', '--validate=strict', '-f', file, '-o', 'name');
      assert.equal(out.trim().split('\n').length, objects.length, out);
    }
  });

  test('helm install creates every object of the release', async () => {
    const install = await helm('install', RELEASE, chartDir, '-n', NS, '-f', path.join(fixtures, 'e2e.values.yaml'));
    assert.equal(install.code, 0, install.stderr + install.stdout);
    assert.match(install.stdout, /STATUS: deployed/);
    // NOTES.txt's first policy is accepted by the real CRD, as pasted.
    const firstPolicy = /^kubectl apply -n (\S+) -f - <<'POLICY'\n([\s\S]+?)\nPOLICY$/m.exec(install.stdout);
    assert.ok(firstPolicy, `NOTES show a policy to apply:\n${install.stdout}`);
    assert.equal(firstPolicy[1], NS);
    await kubectl('wait', '--for=condition=Established', '--timeout=30s', 'crd/socks4policies.socks4-fleet.io');
    await kubectlIn(firstPolicy[2]!, 'apply', '--dry-run=server', '--validate=strict', '-n', NS, '-f', '-');
    manifest = parseManifest((await helm('get', 'manifest', RELEASE, '-n', NS)).stdout);
    const kinds = new Set(manifest.map((doc) => doc.kind));
    for (const kind of [
      'CustomResourceDefinition',
      'Deployment',
      'Service',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
      'NetworkPolicy',
    ]) {
      assert.ok(kinds.has(kind), `the release has a ${kind}`);
    }
    const file = path.join(home, 'manifest.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifest }));
    const live = JSON.parse(await kubectl('get', '-f', file, '-o', 'json')) as { items: K8sObject[] };
    assert.deepEqual(
      live.items.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      manifest.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    );
    for (const object of live.items)
      assert.equal(object.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', object.metadata.name);
  });

  test('the bundled Redis password is generated once, kept by helm upgrade, and required from here on', async () => {
    const read = async (): Promise<string> =>
      Buffer.from(
        await kubectl('get', 'secret', `${FULLNAME}-redis-auth`, '-n', NS, '-o', 'jsonpath={.data.password}'),
        'base64',
      ).toString();
    redisPassword = await read();
    assert.match(redisPassword, /^[A-Za-z0-9]{32}$/);
    const upgrade = await helm('upgrade', RELEASE, chartDir, '-n', NS, '-f', path.join(fixtures, 'e2e.values.yaml'));
    assert.equal(upgrade.code, 0, upgrade.stderr + upgrade.stdout);
    assert.equal(await read(), redisPassword, 'helm upgrade kept the password (lookup)');
    // The local Redis stands in for the chart's, which requires the password: so does it now.
    await sendCommands(redis.port, [['CONFIG', 'SET', 'requirepass', redisPassword]]);
    assert.match(await sendCommands(redis.port, [['PING']]), /NOAUTH/);
  });

  test('every pod template is admitted under the restricted Pod Security Standard', async () => {
    const hooks = parseManifest((await helm('get', 'hooks', RELEASE, '-n', NS)).stdout);
    const allFeatures = parseManifest(
      await mustRun(
        'helm',
        ['template', RELEASE, chartDir, '-n', NS, '-f', path.join(fixtures, 'all-features.values.yaml')],
        { env: helmEnv(home) },
      ),
    );
    const pods: { name: string; spec: PodSpec; labels: Record<string, string> }[] = [];
    for (const [source, objects] of [
      ['release', manifest],
      ['hooks', hooks],
      ['all-features', allFeatures],
    ] as const) {
      for (const object of objects) {
        if (object.kind === 'Deployment' && object.spec?.template) {
          pods.push({
            name: `${source}-${object.metadata.name}`,
            spec: object.spec.template.spec,
            labels: object.spec.template.metadata?.labels ?? {},
          });
        } else if (object.kind === 'Pod' && object.spec) {
          pods.push({
            name: `${source}-${object.metadata.name}`,
            spec: object.spec as PodSpec,
            labels: object.metadata.labels ?? {},
          });
        }
      }
    }
    // proxy, operator and Redis of the release; the helm test pod; proxy, operator and test pod
    // of the external-Redis/TLS/tracing render.
    assert.equal(pods.length, 7, pods.map((pod) => pod.name).join(', '));
    for (const pod of pods) {
      const object = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: pod.name.slice(0, 63).replace(/-+$/, ''),
          namespace: NS,
          labels: { ...pod.labels, 'socks4-fleet.io/admission-check': 'true' },
        },
        spec: pod.spec,
      };
      const created = await runTool(
        'kubectl',
        ['--kubeconfig', plane.kubeconfigPath, 'create', '-f', '-', '-o', 'name'],
        { input: JSON.stringify(object) },
      );
      assert.equal(created.code, 0, `${pod.name} was refused:\n${created.stderr}`);
    }
    // The namespace really enforces: a pod without the settings is refused.
    const bare = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bare', namespace: NS },
      spec: { serviceAccountName: `${FULLNAME}-proxy`, containers: [{ name: 'c', image: 'busybox' }] },
    };
    const refused = await runTool('kubectl', ['--kubeconfig', plane.kubeconfigPath, 'create', '-f', '-'], {
      input: JSON.stringify(bare),
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /violates PodSecurity "restricted:latest"/);
    await kubectl('delete', 'pods', '-n', NS, '-l', 'socks4-fleet.io/admission-check=true', '--wait=false');
  });

  test("a ServiceMonitor without its API fails the install with the chart's message", async () => {
    const result = await helm(
      'install',
      'monitored',
      chartDir,
      '-n',
      NS,
      '--dry-run=server',
      '--set',
      'crds.enabled=false',
      '--set',
      'metrics.serviceMonitor.enabled=true',
    );
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /this cluster has no monitoring\.coreos\.com\/v1 ServiceMonitor API: install the Prometheus Operator/,
    );
  });
});

describe('the operator and two proxies as the chart runs them, on a real Redis', () => {
  let allowed: Closable;
  let denied: Closable;
  const proxyPorts: number[] = [];
  const opsPorts: number[] = [];

  const policy = (port: number) => `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata:
  name: ${POLICY}
  namespace: ${NS}
spec:
  rules:
    - name: local-web
      action: Allow
      commands: [Connect]
      from:
        cidrs: ["127.0.0.0/8"]
      to:
        cidrs: ["127.0.0.1/32"]
        ports: ["${port}"]
`;

  /** The body curl gets through the proxy, or null when the proxy refuses. */
  const curlThrough = (proxyPort: number, target: Closable) =>
    new Promise<string | null>((resolve) => {
      execFile(
        'curl',
        ['-sS', '--max-time', '10', '--socks4', `127.0.0.1:${proxyPort}`, `http://127.0.0.1:${target.port}/`],
        { env: cleanEnv(), timeout: 15_000 },
        (error, stdout) => resolve(error === null ? stdout : null),
      );
    });
  const expectThroughBoth = async (open: Closable, closed: Closable, timeoutMs = WAIT_MS) => {
    assert.equal(proxyPorts.length, 2, 'both proxies are running');
    await waitFor(
      `port ${open.port} allowed and ${closed.port} refused through both proxies`,
      async () => {
        for (const port of proxyPorts) {
          if ((await curlThrough(port, open)) !== `upstream ${open.port}\n`) return undefined;
          if ((await curlThrough(port, closed)) !== null) return undefined;
        }
        return true;
      },
      timeoutMs,
    );
  };
  const readyColumn = async () => {
    const table = await kubectl('get', 'socks4policies', '-n', NS);
    const [header, ...rows] = table
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/));
    const row = rows.find((cells) => cells[0] === POLICY);
    return row?.[header!.indexOf('READY')];
  };

  before(async () => {
    // Bodies name their port, so a reply cannot come from the wrong server.
    allowed = await startHttpServerNamed();
    upstreams.push(allowed);
    denied = await startHttpServerNamed();
    upstreams.push(denied);
  });

  test("the operator runs with the chart's ServiceAccount token and command line", async () => {
    const token = (await kubectl('create', 'token', `${FULLNAME}-operator`, '-n', NS, '--duration=1h')).trim();
    const kubeconfig = plane.writeKubeconfig(token, 'chart-operator');
    const whoami = JSON.parse(
      await mustRun('kubectl', ['--kubeconfig', kubeconfig, 'auth', 'whoami', '-o', 'json']),
    ) as { status: { userInfo: { username: string } } };
    assert.equal(whoami.status.userInfo.username, `system:serviceaccount:${NS}:${FULLNAME}-operator`);
    const container = deployment('operator').spec!.template!.spec.containers[0]!;
    const env = containerEnv(container, { fields: podFields('operator'), secrets: redisSecrets() });
    const opsPort = await freePort();
    const args = containerArgs(container, env, { '--redis-url': redis.url, '--ops-listen': `127.0.0.1:${opsPort}` });
    assert.equal(args[0], 'operator');
    const operator = startCli(args, { ...env, KUBECONFIG: kubeconfig });
    processes.push(operator);
    await operator.waitForOutput(/socks4-fleet operator started/, WAIT_MS);
    // The chart's Lease Role is enough for the chart's ServiceAccount to lead.
    const lease = await waitFor('the operator to hold its Lease', async () => {
      const result = await runTool('kubectl', [
        '--kubeconfig',
        plane.kubeconfigPath,
        'get',
        'lease',
        `${FULLNAME}-operator`,
        '-n',
        NS,
        '-o',
        'json',
      ]);
      const holder =
        result.code === 0
          ? (JSON.parse(result.stdout) as { spec: { holderIdentity?: string } }).spec.holderIdentity
          : undefined;
      return holder ? holder : undefined;
    });
    assert.match(lease, /^e2e-socks4-fleet-operator-local/);
  });

  test("two proxies run with the chart's command line", async () => {
    const container = deployment('proxy').spec!.template!.spec.containers[0]!;
    for (const replica of [0, 1]) {
      const [port, ops] = [await freePort(), await freePort()];
      const env = containerEnv(container, { fields: podFields(`proxy-${replica}`), secrets: redisSecrets() });
      assert.equal(env.REDIS_PASSWORD, redisPassword);
      const args = containerArgs(container, env, {
        '--redis-url': redis.url,
        '--listen': `127.0.0.1:${port}`,
        '--ops-listen': `127.0.0.1:${ops}`,
      });
      assert.equal(args[0], 'proxy');
      const proxy = startCli(args, env);
      processes.push(proxy);
      await proxy.waitForOutput(/socks4-fleet proxy listening/, WAIT_MS);
      proxyPorts.push(port);
      opsPorts.push(ops);
    }
  });

  test('kubectl apply of a policy: Ready, and curl allowed and refused through both proxies', async () => {
    // A Socks4Policy governs its own namespace's pods only (tenancy): curl here speaks for a pod
    // of ${NS}. No kubelet runs it; the operator learns its address from status.podIPs.
    await kubectlIn(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'curl-client', namespace: NS },
        spec: {
          serviceAccountName: `${FULLNAME}-proxy`,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'curl',
              image: 'registry.invalid/curl',
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      }),
      'apply',
      '-f',
      '-',
    );
    await kubectl(
      'patch',
      'pod',
      'curl-client',
      '-n',
      NS,
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}]}}',
    );
    await kubectlIn(policy(allowed.port), 'apply', '-f', '-');
    await waitFor('READY True in kubectl get socks4policies', async () =>
      (await readyColumn()) === 'True' ? true : undefined,
    );
    for (const ops of opsPorts) {
      await waitFor(`proxy ops ${ops} ready`, async () =>
        (await fetch(`http://127.0.0.1:${ops}/readyz`)).status === 200 ? true : undefined,
      );
    }
    await expectThroughBoth(allowed, denied);
  });

  test('in external mode a proxy gets the Redis URL from its Secret as REDIS_URL, never in its command line', async () => {
    const rendered = parseManifest(
      await mustRun(
        'helm',
        [
          'template',
          RELEASE,
          chartDir,
          '-n',
          NS,
          '--set',
          'redis.mode=external',
          '--set',
          'redis.external.existingSecret=redis-conn',
        ],
        { env: helmEnv(home) },
      ),
    );
    const container = rendered.find((doc) => doc.kind === 'Deployment' && doc.metadata.name === `${FULLNAME}-proxy`)!
      .spec!.template!.spec.containers[0]!;
    const env = containerEnv(container, {
      fields: podFields('proxy-external'),
      secrets: { 'redis-conn/url': redisUrlWithPassword() },
    });
    const [port, ops] = [await freePort(), await freePort()];
    const args = containerArgs(container, env, { '--listen': `127.0.0.1:${port}`, '--ops-listen': `127.0.0.1:${ops}` });
    assert.equal(args[0], 'proxy');
    assert.ok(!args.includes('--redis-url'), args.join(' '));
    const proxy = startCli(args, env);
    processes.push(proxy);
    try {
      await proxy.waitForOutput(/socks4-fleet proxy listening/, WAIT_MS);
      // Fleet mode on the release's Redis and prefix: it holds the operator's snapshot and enforces it.
      await waitFor(`proxy ops ${ops} ready`, async () =>
        (await fetch(`http://127.0.0.1:${ops}/readyz`)).status === 200 ? true : undefined,
      );
      assert.equal(await curlThrough(port, allowed), `upstream ${allowed.port}\n`);
      assert.equal(await curlThrough(port, denied), null);
      const cmdline = readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8');
      assert.ok(
        !cmdline.includes(redisPassword),
        `the password is not in the process list: ${cmdline.replaceAll('\0', ' ')}`,
      );
      assert.ok(!cmdline.includes(redis.url), `the URL is not in the process list: ${cmdline.replaceAll('\0', ' ')}`);
    } finally {
      await proxy.stop();
    }
  });

  test("the helm test pod's script does its SOCKS4 CONNECT through the proxy", async () => {
    const hooks = parseManifest((await helm('get', 'hooks', RELEASE, '-n', NS)).stdout);
    const container = hooks.find((doc) => doc.kind === 'Pod')!.spec!.containers![0]!;
    const env = containerEnv(container, { fields: {} });
    const [program, ...args] = container.command!;
    assert.equal(program, 'node');
    for (const [destination, expectGranted, exit] of [
      [`127.0.0.1:${allowed.port}`, 'true', 0],
      [`127.0.0.1:${denied.port}`, 'true', 1],
      [`127.0.0.1:${denied.port}`, 'false', 0],
    ] as const) {
      const code = await new Promise<number | null>((resolve) => {
        const child = execFile(
          process.execPath,
          args,
          {
            env: cleanEnv({
              ...env,
              SOCKS4_PROXY_HOST: '127.0.0.1',
              SOCKS4_PROXY_PORT: String(proxyPorts[0]),
              SOCKS4_DESTINATION: destination,
              SOCKS4_EXPECT_GRANTED: expectGranted,
            }),
            timeout: 20_000,
          },
          () => resolve(child.exitCode),
        );
      });
      assert.equal(code, exit, `${destination} expectGranted=${expectGranted}`);
    }
  });

  test('editing the policy flips both proxies', async () => {
    await kubectlIn(policy(denied.port), 'apply', '-f', '-');
    await expectThroughBoth(denied, allowed);
    await waitFor('READY True for generation 2', async () => {
      const generation = await kubectl(
        'get',
        'socks4policy',
        POLICY,
        '-n',
        NS,
        '-o',
        'jsonpath={.status.observedGeneration}',
      );
      return generation === '2' && (await readyColumn()) === 'True' ? true : undefined;
    });
  });

  test('helm uninstall leaves the CRD and the policies', async () => {
    for (const child of processes.splice(0)) await child.stop();
    const uninstall = await helm('uninstall', RELEASE, '-n', NS);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.match(
      uninstall.stdout + uninstall.stderr,
      /kept due to the resource policy[\s\S]*socks4policies\.socks4-fleet\.io/,
    );
    await kubectl('get', 'crd', 'socks4policies.socks4-fleet.io');
    assert.equal(
      (await kubectl('get', 'socks4policies', '-n', NS, '-o', 'name')).trim(),
      `socks4policy.socks4-fleet.io/${POLICY}`,
    );
    const left = await kubectl(
      'get',
      'deployments,services,serviceaccounts',
      '-n',
      NS,
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    );
    assert.equal(left.trim(), '', "the release's workloads are gone");
    console.log(`chart end-to-end: install to uninstall in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

/** Downward API values for a local stand-in of pod `name`. */
function podFields(name: string): Record<string, string> {
  return {
    'metadata.name': `${FULLNAME}-${name}-local`,
    'metadata.namespace': NS,
    'metadata.uid': randomUUID(),
    'spec.nodeName': 'localhost',
  };
}

/** An HTTP server whose body names its own port. */
async function startHttpServerNamed(): Promise<Closable> {
  const server = createServer((_req, res) => {
    const port = (server.address() as { port: number }).port;
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`upstream ${port}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
