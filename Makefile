# socks4-fleet — every entry point a person or CI uses. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all

# Every recipe that needs Node runs through scripts/with-node: the project's Node (the machine's
# when new enough, else the pinned Node 24 installed into .tools/ on first use) first on PATH,
# with node_modules/.bin and bin/, and without NODE_EXTRA_CA_CERTS (Node parses that bundle at
# every start: seconds per process on a busy machine, and every test spawns processes; npm gets
# it as its cafile instead). Nothing is resolved when the Makefile is read, so `make clean` or
# `make -n` never fetches Node.
WITH_NODE := scripts/with-node

TEST_FILES ?= test/**/*.test.ts

.PHONY: all deps typecheck lint format run test tools image bench bench-goals chart-test chart-sync docs generate soak mutate clean distclean help

all: deps typecheck

deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	$(WITH_NODE) npm ci --no-audit --no-fund
	touch $@

typecheck: deps
	$(WITH_NODE) tsc -p tsconfig.json

# Biome (biome.jsonc): the format check and the linter, as CI runs them; warnings fail too, so none pile up.
lint: deps
	$(WITH_NODE) biome ci --error-on-warnings .

# Writes Biome's formatting into every file `make lint` checks.
format: deps
	$(WITH_NODE) biome format --write .

run: deps
	scripts/socks4-fleet proxy --listen 127.0.0.1:1080 --policy-file examples/policy.yaml

# kube-apiserver, etcd, kubectl, helm and the helm-unittest plugin, built from their pinned Go
# modules into bin/ (minutes the first time, under a second once built).
tools:
	scripts/build-tools.sh

# The container image, no Docker daemon needed: dist/socks4-fleet-<version>.oci.tar (OCI layout for
# docker/podman load, skopeo, crane push) and its CycloneDX SBOM, from pinned inputs
# (deploy/image/pins.txt). Reproducible: the same commit gives the same image digest.
image: deps tools
	$(WITH_NODE) scripts/build-image.sh

test: deps typecheck tools
	$(WITH_NODE) node --test --test-concurrency=2 --test-timeout=300000 '$(TEST_FILES)'

# Benchmarks side by side with Dante and direct, then issue #16's goals (never part of `make test`; ~15 minutes).
# Options go in ARGS: make bench ARGS=--quick (bench/README.md lists them).
bench: deps
	$(WITH_NODE) node bench/run.ts $(ARGS)
	$(WITH_NODE) node bench/goals.ts $(if $(findstring --quick,$(ARGS)),--quick,)

# Issue #16's goals alone, each printed met/missed with its figures (~8 minutes; ARGS=--quick ~3).
bench-goals: deps
	$(WITH_NODE) node bench/goals.ts $(ARGS)

# The chart alone: helm lint --strict, helm-unittest suites, schema drift, the end-to-end install.
chart-test: deps tools
	$(WITH_NODE) node --test --test-concurrency=1 --test-timeout=300000 'test/chart/*.test.ts'

# Every generated file from its one source (scripts/generate.ts lists them): both CRDs from
# src/policy/schema.ts, the chart's values.schema.json from values.yaml's `# @schema`
# annotations, the chart's copies of deploy/ and docs/reference.md. Each says so in its first
# lines; test/generate/ fails when one is stale. On a clean tree it changes nothing.
generate: deps
	$(WITH_NODE) node scripts/generate.ts

# The chart's copies of deploy/ are one of the generated files: kept as a name for `make generate`.
chart-sync: generate

# docs/reference.md alone, from the code (flags, policy fields, reasons, metrics, spans, log
# lines); `make generate` writes it too, and a test fails when it is stale.
docs: deps
	$(WITH_NODE) node scripts/gen-reference.ts

# The long reliability runs (~2½ min on 2 cores): a million codec fuzz cases, 100 000 hostile
# TCP sessions, 5 000 slowloris clients and a 10 000-connection burst. Needs ulimit -n >= 17 000.
soak: deps
	scripts/soak.sh

# clean: what `make` and the tests write in the checkout and can rebuild in seconds to minutes —
#   node_modules/ (npm ci), .tools/ (the pinned Node), dist/ (make image), bench/results/,
#   .cache/ (the benchmarks' Go load generator), .stryker-tmp/ and reports/mutation/ (make mutate).
# distclean: also bin/, the Go-built kube-apiserver, etcd, kubectl, helm and Jaeger (many minutes
#   to rebuild with a cold Go cache). Neither touches ~/.cache/socks4-fleet (the downloaded Node
#   tarball) or Go's module and build caches, which are shared with other checkouts.
# Mutation testing (StrykerJS, never part of `make test`): protocol, policy, limits and the
# session/relay/upstream, one module at a time with its own tests; HTML under reports/mutation/.
# Tens of minutes on 2 shared cores; MUTATE_MODULES="protocol limits" runs some of them.
mutate: deps
	$(WITH_NODE) scripts/mutate.sh

clean:
	rm -rf node_modules .tools dist bench/results .cache .stryker-tmp reports/mutation

distclean: clean
	rm -rf bin

help:
	@echo 'make run        the proxy on 127.0.0.1:1080 with examples/policy.yaml'
	@echo 'make test       every test suite (installs Node, npm packages and the Go-built tools first)'
	@echo 'make lint       format check and linter (Biome, biome.jsonc), as CI runs them'
	@echo 'make format     rewrite the code in the formatting make lint checks'
	@echo 'make tools      build kube-apiserver, etcd, kubectl, helm, helm-unittest, jaeger into bin/'
	@echo 'make chart-test the chart suites alone'
	@echo 'make generate   rewrite every generated file: CRDs (src/policy/schema.ts), chart values.schema.json, chart copies, docs/reference.md'
	@echo 'make soak       the long reliability runs'
	@echo 'make bench      benchmarks against Dante, then the performance goals (ARGS=--quick for a short run)'
	@echo 'make bench-goals the performance goals alone: CPU per session vs the Node floor, tracing, workers, fleet scaling'
	@echo 'make mutate     mutation testing (StrykerJS) per module, scores printed; MUTATE_MODULES=... for some'
	@echo 'make clean      remove node_modules/ .tools/ dist/ bench/results/ .cache/ (bench load generator) .stryker-tmp/ reports/mutation/'
	@echo 'make distclean  clean, and also bin/ (the Go-built tools)'
