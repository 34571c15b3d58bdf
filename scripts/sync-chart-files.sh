#!/usr/bin/env bash
# Generates the ClusterSocks4Policy CRD (scripts/gen-cluster-crd.ts) and copies the operator's CRDs
# and RBAC rules from deploy/ (the single source, owned by the operator)
# into charts/socks4-fleet/files/, where the chart's templates read them: Helm can only read files
# inside the chart. Each copy starts with a header naming its source.
#
# Usage: scripts/sync-chart-files.sh          rewrite the copies
#        scripts/sync-chart-files.sh --check  exit 1 (and show the diff) when a copy is stale
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES=charts/socks4-fleet/files
# source (under deploy/) → copy (under $FILES/)
PAIRS=(
  "deploy/crd/socks4policies.yaml:crd/socks4policies.yaml"
  "deploy/crd/clustersocks4policies.yaml:crd/clustersocks4policies.yaml"
  "deploy/rbac/operator-cluster-policies-role.yaml:rbac/operator-cluster-policies-role.yaml"
  "deploy/rbac/operator-clusterrole.yaml:rbac/operator-clusterrole.yaml"
  "deploy/rbac/operator-leader-election-role.yaml:rbac/operator-leader-election-role.yaml"
)

check=0
[[ "${1-}" == "--check" ]] && check=1

# render SOURCE: what the copy of SOURCE must contain.
render() {
  echo "# Copied from $1 by scripts/sync-chart-files.sh: edit the original, then rerun the script."
  cat "$ROOT/$1"
}

# The cluster kind's CRD is derived from the namespaced one (one schema, never two by hand).
if [[ $check == 1 ]]; then
  if ! diff -u --label deploy/crd/clustersocks4policies.yaml --label "generated" "$ROOT/deploy/crd/clustersocks4policies.yaml" \
      <(node "$ROOT/scripts/gen-cluster-crd.ts" --stdout); then
    echo "sync-chart-files: deploy/crd/clustersocks4policies.yaml is stale; run scripts/sync-chart-files.sh" >&2
    exit 1
  fi
else
  node "$ROOT/scripts/gen-cluster-crd.ts"
fi

stale=0
for pair in "${PAIRS[@]}"; do
  source=${pair%%:*}
  copy="$FILES/${pair#*:}"
  if [[ $check == 1 ]]; then
    if ! diff -u --label "$copy" --label "$source (rendered)" "$ROOT/$copy" <(render "$source") 2>/dev/null; then
      [[ -f "$ROOT/$copy" ]] || echo "sync-chart-files: $copy is missing"
      stale=1
    fi
  else
    mkdir -p "$(dirname "$ROOT/$copy")"
    render "$source" >"$ROOT/$copy.tmp"
    mv -f "$ROOT/$copy.tmp" "$ROOT/$copy"
  fi
done

if [[ $stale == 1 ]]; then
  echo "sync-chart-files: the chart's copies differ from deploy/; run scripts/sync-chart-files.sh" >&2
  exit 1
fi
