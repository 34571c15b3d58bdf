#!/usr/bin/env bash
# `make soak`: the long versions of the reliability suites in test/reliability/ (SOAK=1):
# over a million codec cases and 50 000 hostile TCP sessions, 5 000 slowloris clients with a
# 10 000-connection burst, SSRF probes and hostile data. Minutes, not seconds; prints the figures.
# FUZZ_SEED, FUZZ_CODEC_RUNS and FUZZ_SESSION_CASES override the fuzzers' seed and sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

# 5 000 slowloris + 10 000 burst clients hold ~15 000 descriptors in the attacking process (the
# proxy runs in its own): raise the soft limit as far as the hard limit allows.
need=17000
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -ge 65536 ]]; then ulimit -n 65536; else ulimit -n "$hard"; fi
echo "soak: open-file limit $(ulimit -n) (hard $hard)"
if (( $(ulimit -n) < need )); then
  echo "soak: needs at least $need open files for the exhaustion run; raise the hard limit (ulimit -Hn) and retry" >&2
  exit 1
fi

export SOAK=1
exec scripts/with-node node --test --test-concurrency=1 --test-timeout=3600000 --test-reporter=spec \
  test/reliability/fuzz-handshake.test.ts test/reliability/exhaustion.test.ts \
  test/reliability/ssrf.test.ts test/reliability/hostile-data.test.ts
