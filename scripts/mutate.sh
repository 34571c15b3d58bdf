#!/usr/bin/env bash
# `make mutate`: StrykerJS, one module at a time (mutation/modules.mjs), each with only its own
# test files, niced and with modest concurrency (the machine's two cores are shared). Prints the
# wall time of each module and then the score table; fails when a module is below its bar.
#   MUTATE_MODULES="protocol limits"  run some modules only
#   MUTATE_CONCURRENCY=1              test runner processes (default 2)
#   MUTATE_INCREMENTAL=1              reuse reports/mutation/<module>/incremental.json
set -euo pipefail
cd "$(dirname "$0")/.."
modules=${MUTATE_MODULES:-protocol policy policy-compile policy-validate limits session}
for module in $modules; do
  start=$(date +%s)
  echo "== mutate $module"
  MUTATE_MODULE=$module nice -n 10 stryker run stryker.config.mjs || echo "stryker failed for $module" >&2
  echo "== $module: $(( $(date +%s) - start )) s wall"
done
# shellcheck disable=SC2086
node mutation/scores.mjs $modules
