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

.PHONY: all deps typecheck run test tools bench clean

all: deps typecheck

deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

typecheck: deps
	tsc -p tsconfig.json

run: deps
	node src/cli/main.ts proxy --listen 127.0.0.1:1080 --policy-file examples/policy.yaml

# kube-apiserver, etcd, kubectl, helm and the helm-unittest plugin, built from their pinned Go
# modules into bin/ (minutes the first time, under a second once built).
tools:
	scripts/build-tools.sh

test: deps typecheck tools
	node --test --test-concurrency=2 --test-timeout=300000 '$(TEST_FILES)'

clean:
	rm -rf node_modules .tools
