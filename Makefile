# socks4-fleet — every entry point a person or CI uses. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all

# The project's Node: the machine's when it is new enough, else the pinned official Node 24
# from the npm registry (scripts/ensure-node.sh, cached under .tools/).
NODE_DIR := $(shell scripts/ensure-node.sh)
export PATH := $(CURDIR)/node_modules/.bin:$(NODE_DIR):$(CURDIR)/bin:$(PATH)
# npm on the project's Node does not see the machine's global npmrc; hand it the CA bundle the
# environment trusts. Node itself then runs without NODE_EXTRA_CA_CERTS: parsing the bundle costs
# seconds per process on a busy machine, and every test spawns processes.
ifdef NODE_EXTRA_CA_CERTS
export npm_config_cafile := $(NODE_EXTRA_CA_CERTS)
endif
unexport NODE_EXTRA_CA_CERTS

TEST_FILES ?= test/**/*.test.ts

.PHONY: all deps typecheck run test tools bench chart-test chart-sync soak mutate clean

all: deps typecheck

deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

typecheck: deps
	tsc -p tsconfig.json

run: deps
	scripts/socks4-fleet proxy --listen 127.0.0.1:1080 --policy-file examples/policy.yaml

# kube-apiserver, etcd, kubectl, helm and the helm-unittest plugin, built from their pinned Go
# modules into bin/ (minutes the first time, under a second once built).
tools:
	scripts/build-tools.sh

test: deps typecheck tools
	node --test --test-concurrency=2 --test-timeout=300000 '$(TEST_FILES)'

# Benchmarks side by side with Dante and direct (never part of `make test`; ~5 minutes).
bench: deps
	node bench/run.ts

# The chart alone: helm lint --strict, helm-unittest suites, schema drift, the end-to-end install.
chart-test: deps tools
	node --test --test-concurrency=1 --test-timeout=300000 'test/chart/*.test.ts'

# Copies the CRD and the operator's ClusterRole from deploy/ into the chart (a test checks it).
chart-sync:
	scripts/sync-chart-files.sh

# The long reliability runs (~2½ min on 2 cores): a million codec fuzz cases, 100 000 hostile
# TCP sessions, 5 000 slowloris clients and a 10 000-connection burst. Needs ulimit -n >= 17 000.
soak: deps
	scripts/soak.sh

# Mutation testing (StrykerJS, never part of `make test`): protocol, policy, limits and the
# session/relay/upstream, one module at a time with its own tests; HTML under reports/mutation/.
# Tens of minutes on 2 shared cores; MUTATE_MODULES="protocol limits" runs some of them.
mutate: deps
	scripts/mutate.sh

clean:
	rm -rf node_modules .tools .stryker-tmp reports/mutation
