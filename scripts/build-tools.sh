#!/usr/bin/env bash
# Builds the pinned third-party binaries the tests drive (kube-apiserver, kubectl,
# etcd, helm, the helm-unittest plugin, Jaeger v2) and crane, which `make image` assembles
# the container image with, from Go modules into bin/ (git-ignored).
#
# Why from source: only the Go module proxy is reachable, so release tarballs cannot
# be downloaded. Each tool has a wrapper module under tools/<name>/ whose go.mod and
# go.sum are the pin (the wrappers exist because the upstream modules carry
# `replace` directives that `go install pkg@version` refuses).
#
# Cached: every binary has a stamp in bin/.stamps/ (version, Go version, hash of the
# wrapper's go.mod/go.sum and of the ldflags); a binary whose stamp matches is not
# rebuilt, so a warm run takes about a second. A cold run takes many minutes
# (kube-apiserver dominates); go build's cache in $(go env GOCACHE) speeds rebuilds.
#
# Usage: scripts/build-tools.sh [--force]   (--force ignores the stamps)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/bin"
STAMPS="$BIN/.stamps"
TOOLS="$ROOT/tools"
FORCE=0
[[ "${1-}" == "--force" ]] && FORCE=1

if ! command -v go >/dev/null 2>&1; then
  [[ -x /usr/local/go/bin/go ]] || { echo "build-tools: go not found" >&2; exit 1; }
  export PATH="/usr/local/go/bin:$PATH"
fi

# Static, path-independent binaries. go build's default -mod=readonly makes the
# committed go.mod/go.sum the pin: a build that would change them fails instead.
export CGO_ENABLED=0
GO_VERSION=$(go env GOVERSION)
GOOS=$(go env GOOS)
GOARCH=$(go env GOARCH)

mkdir -p "$BIN" "$STAMPS"

# module_version DIR MODULE: the version the wrapper's go.mod pins for MODULE.
module_version() {
  local v
  v=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$TOOLS/$1/go.mod")
  [[ -n "$v" ]] || { echo "build-tools: $2 not pinned in tools/$1/go.mod" >&2; exit 1; }
  echo "$v"
}

# module_field DIR MODULE FIELD: a field (Dir, Info, ...) of `go mod download -json MODULE` run in
# wrapper DIR. `go list -m -f '{{.Dir}}'` prints nothing for a module that is not downloaded yet
# (and `{{.Time}}` nothing without its .info), which on a fresh machine (empty GOMODCACHE) is
# every module: `go mod download` fetches what is missing and then tells.
module_field() {
  local v
  v=$(cd "$TOOLS/$1" && go mod download -json "$2" |
    sed -n "s/^[[:space:]]*\"$3\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p")
  [[ -n "$v" ]] || { echo "build-tools: no $3 for $2 from 'go mod download' in tools/$1" >&2; exit 1; }
  echo "$v"
}

# module_dir DIR MODULE: where MODULE's source lies in the module cache.
module_dir() { module_field "$1" "$2" Dir; }

# module_date DIR MODULE: the module's publication time in UTC, standing in for a build date.
module_date() {
  local info t
  info=$(module_field "$1" "$2" Info) || exit 1
  t=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
  [[ -n "$t" ]] || { echo "build-tools: no Time in $info" >&2; exit 1; }
  date -u -d "$t" +%Y-%m-%dT%H:%M:%SZ
}

# stamp_for NAME DIR LDFLAGS: what a matching binary must have been built from.
stamp_for() {
  local sum
  sum=$(cat "$TOOLS/$2/go.mod" "$TOOLS/$2/go.sum" <(echo "$3") | sha256sum | cut -c1-16)
  echo "$1 $GO_VERSION $GOOS/$GOARCH $sum"
}

# is_fresh OUT STAMP: the binary exists and was built from exactly this stamp.
is_fresh() {
  [[ $FORCE == 0 && -x "$1" && -f "$STAMPS/$(basename "$1")" ]] &&
    [[ "$(cat "$STAMPS/$(basename "$1")")" == "$2" ]]
}

# build NAME DIR PKG OUT LDFLAGS: go build PKG inside wrapper DIR to OUT, unless fresh.
build() {
  local name=$1 dir=$2 pkg=$3 out=$4 ldflags=$5 stamp start
  stamp=$(stamp_for "$name" "$dir" "$ldflags")
  if is_fresh "$out" "$stamp"; then
    echo "build-tools: $name up to date"
    return
  fi
  echo "build-tools: building $name ($pkg)"
  start=$SECONDS
  rm -f "$STAMPS/$(basename "$out")"
  (cd "$TOOLS/$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  echo "$stamp" >"$STAMPS/$(basename "$out")"
  echo "build-tools: built $name in $((SECONDS - start))s"
}

# expect_output NAME NEEDLE CMD...: fail loudly if a built binary misreports itself.
expect_output() {
  local name=$1 needle=$2 got
  shift 2
  got=$("$@" 2>&1) || true
  if [[ "$got" != *"$needle"* ]]; then
    echo "build-tools: $name: expected '$needle' in output of '$*', got: $got" >&2
    exit 1
  fi
}

total_start=$SECONDS

# --- etcd: its version lives in go.etcd.io/etcd/api/v3/version, set in source.
ETCD_VERSION=$(module_version etcd go.etcd.io/etcd/server/v3)
build "etcd $ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 "$BIN/etcd" "-s -w"
expect_output etcd "etcd Version: ${ETCD_VERSION#v}" "$BIN/etcd" --version

# --- kube-apiserver, kubectl: stamp the version the way hack/lib/version.sh does,
# so /version and `kubectl version` report the release instead of v0.0.0-master.
KUBE_VERSION=$(module_version kubernetes k8s.io/kubernetes)
kube_major=${KUBE_VERSION#v}; kube_major=${kube_major%%.*}
kube_minor=${KUBE_VERSION#v*.}; kube_minor=${kube_minor%%.*}
# The module's publication time stands in for the build date (reproducible builds).
kube_date=$(module_date kubernetes k8s.io/kubernetes)
kube_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$kube_major"
  kube_ldflags+=" -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
  kube_ldflags+=" -X $pkg.buildDate=$kube_date"
done
build "kube-apiserver $KUBE_VERSION" kubernetes k8s.io/kubernetes/cmd/kube-apiserver \
  "$BIN/kube-apiserver" "$kube_ldflags"
expect_output kube-apiserver "Kubernetes $KUBE_VERSION" "$BIN/kube-apiserver" --version
build "kubectl $KUBE_VERSION" kubernetes k8s.io/kubernetes/cmd/kubectl \
  "$BIN/kubectl" "$kube_ldflags"
expect_output kubectl "Client Version: $KUBE_VERSION" "$BIN/kubectl" version --client

# --- helm: version via ldflags as helm's Makefile does; its default Kubernetes
# version comes from the client-go version recorded in the build info.
HELM_VERSION=$(module_version helm helm.sh/helm/v4)
build "helm $HELM_VERSION" helm helm.sh/helm/v4/cmd/helm "$BIN/helm" \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
expect_output helm "$HELM_VERSION" "$BIN/helm" version --short

# --- helm-unittest: laid out as an installed plugin folder, so that
# HELM_PLUGINS=$PWD/bin/helm-plugins bin/helm unittest CHART works offline.
UNITTEST_VERSION=$(module_version helm-unittest github.com/helm-unittest/helm-unittest)
PLUGIN_DIR="$BIN/helm-plugins/unittest"
# plugin.yaml names the binary per platform (untt-linux-amd64, untt-macos-arm64, ...).
untt_os=$GOOS; [[ $untt_os == darwin ]] && untt_os=macos
mkdir -p "$PLUGIN_DIR"
build "helm-unittest $UNITTEST_VERSION" helm-unittest \
  github.com/helm-unittest/helm-unittest/cmd/helm-unittest "$PLUGIN_DIR/untt-$untt_os-$GOARCH" \
  "-s -w -X github.com/helm-unittest/helm-unittest/internal/build.version=${UNITTEST_VERSION#v}"
unittest_src=$(module_dir helm-unittest github.com/helm-unittest/helm-unittest)
if ! cmp -s "$unittest_src/plugin.yaml" "$PLUGIN_DIR/plugin.yaml"; then
  install -m 0644 "$unittest_src/plugin.yaml" "$PLUGIN_DIR/plugin.yaml"
fi
ln -sf "untt-$untt_os-$GOARCH" "$PLUGIN_DIR/untt"
expect_output helm-unittest "${UNITTEST_VERSION#v}" \
  env HELM_PLUGINS="$BIN/helm-plugins" "$BIN/helm" plugin list

# --- jaeger (v2, the tracing backend the telemetry end-to-end tests export to): the module
# is served under Jaeger's v1 tag; the v2 version of the same release is read from the
# module's CHANGELOG ("v1.76.0 / v2.13.0 (date)") and stamped the way Jaeger's
# scripts/makefiles/BuildInfo.mk does, so `jaeger version` reports the release. The
# module proxy carries no commit hash, so gitCommit stays empty. No `ui` build tag: the
# query API is all the tests need, and the UI assets are built by npm upstream.
JAEGER_MODULE_VERSION=$(module_version jaeger github.com/jaegertracing/jaeger)
jaeger_src=$(module_dir jaeger github.com/jaegertracing/jaeger)
JAEGER_VERSION=$(awk -v v="$JAEGER_MODULE_VERSION" '$1 == v && $2 == "/" { print $3; exit }' "$jaeger_src/CHANGELOG.md")
[[ $JAEGER_VERSION == v2.* ]] || { echo "build-tools: no v2 version for jaeger $JAEGER_MODULE_VERSION in its CHANGELOG" >&2; exit 1; }
jaeger_date=$(module_date jaeger github.com/jaegertracing/jaeger)
jaeger_pkg=github.com/jaegertracing/jaeger/internal/version
build "jaeger $JAEGER_VERSION" jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$BIN/jaeger" \
  "-s -w -X $jaeger_pkg.latestVersion=$JAEGER_VERSION -X $jaeger_pkg.date=$jaeger_date"
expect_output jaeger "\"gitVersion\":\"$JAEGER_VERSION\"" "$BIN/jaeger" version

# --- crane (go-containerregistry): assembles the container image for `make image`
# (scripts/build-image.sh) with no Docker daemon. crane reports the module version recorded in
# its build info, so no ldflags are needed.
CRANE_VERSION=$(module_version crane github.com/google/go-containerregistry)
build "crane $CRANE_VERSION" crane github.com/google/go-containerregistry/cmd/crane "$BIN/crane" "-s -w"
expect_output crane "$CRANE_VERSION" "$BIN/crane" version

echo "build-tools: all tools ready in bin/ ($((SECONDS - total_start))s)"
