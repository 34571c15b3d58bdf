// Step of scripts/build-image.sh: makes the OCI image layout crane pulled loadable by name.
//   node scripts/image/finish-layout.ts LAYOUT REPOSITORY TAG   → prints the manifest digest
// index.json gets the annotations `podman load`/skopeo (org.opencontainers.image.ref.name, the
// tag) and containerd-backed `docker load` (io.containerd.image.name, the full name) read; and
// docker's classic `docker load` reads manifest.json, which points at the same blobs (as
// `docker save` writes since Docker 25), so one archive loads everywhere without a copy of any
// layer. The manifest and config blobs are left as crane wrote them: the digest does not move.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}
interface Manifest {
  config: Descriptor;
  layers: Descriptor[];
}

const [layout, repository, tag] = process.argv.slice(2);
if (layout === undefined || repository === undefined || tag === undefined) {
  console.error('usage: finish-layout.ts LAYOUT REPOSITORY TAG');
  process.exit(2);
}

const blobPath = (digest: string): string => path.posix.join('blobs', ...digest.split(':'));
const indexFile = path.join(layout, 'index.json');
const index = JSON.parse(readFileSync(indexFile, 'utf8')) as Index;
if (index.manifests.length !== 1)
  throw new Error(`expected one image in ${indexFile}, found ${index.manifests.length}`);
const image = index.manifests[0]!;
image.annotations = {
  ...image.annotations,
  'io.containerd.image.name': `${repository}:${tag}`,
  'org.opencontainers.image.ref.name': tag,
};
writeFileSync(indexFile, JSON.stringify(index));

const manifest = JSON.parse(readFileSync(path.join(layout, blobPath(image.digest)), 'utf8')) as Manifest;
const dockerManifest = [
  {
    Config: blobPath(manifest.config.digest),
    RepoTags: [`${repository}:${tag}`],
    Layers: manifest.layers.map((layer) => blobPath(layer.digest)),
  },
];
writeFileSync(path.join(layout, 'manifest.json'), JSON.stringify(dockerManifest));
console.log(image.digest);
