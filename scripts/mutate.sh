#!/usr/bin/env bash
# `make mutate`: StrykerJS, one module at a time (mutation/modules.mjs), each with only its own
# test files, niced and with modest concurrency (the machine's two cores are shared). Prints the
# wall time of each module and then the score table of all modules (mutation/scores.json keeps the
# last measured score of each); fails when a module run now is below its bar.
#   MUTATE_MODULES="protocol limits"  run some modules only
#   MUTATE_CONCURRENCY=1              test runner processes (default 2)
#   MUTATE_INCREMENTAL=1              reuse reports/mutation/<module>/incremental.json
#   MUTATE_FILES=src/x.ts,src/y.ts:10-40  mutate only these files or line ranges (one module)
#   MUTATE_TIMEOUT_MS=20000           a wider timeout margin on a loaded machine (default 5000)
set -euo pipefail
# One block, parsed whole before it runs: a run lasts an hour, and bash reads a script as it goes,
# so an edit to this file (a checkout, a merge) mid-run would otherwise run half a line.
{
cd "$(dirname "$0")/.."
modules=${MUTATE_MODULES:-protocol policy policy-compile policy-validate limits relay session}
for module in $modules; do
  start=$(date +%s)
  echo "== mutate $module"
  # A failed run (a test failing in the dry run) writes no report: the last run's must not be
  # scored as this one's.
  rm -f "reports/mutation/$module/mutation.json"
  MUTATE_MODULE=$module nice -n 10 stryker run stryker.config.mjs || echo "stryker failed for $module" >&2
  wall=$(( $(date +%s) - start ))
  mkdir -p "reports/mutation/$module"
  echo "$wall" > "reports/mutation/$module/wall-seconds"
  echo "== $module: $wall s wall"
done
# Every module's row: the ones run now (recorded in mutation/scores.json), the others as recorded.
# shellcheck disable=SC2086
node mutation/scores.mjs $modules
exit $?
}
