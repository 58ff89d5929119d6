# Invigil. `make run` and `make test` work from a fresh Debian 12 machine:
# scripts/install.sh installs whatever apt packages are missing (it is the one
# place that lists them), the models are provisioned, then the real work runs.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# The official Go release lives in /usr/local/go; a Go already on PATH wins.
export PATH := $(PATH):/usr/local/go/bin
# VCS stamping fails where .git is absent (Docker) or owned by another user
# (CI clones); the version comes from VERSION below instead.
export GOFLAGS ?= -buildvcs=false

ADDR    ?= 127.0.0.1:8080
DATA    ?= ./data
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

export INVIGIL_MODELS   ?= $(HOME)/.cache/invigil/models
export INVIGIL_TESTDATA ?= $(CURDIR)/.cache/testdata

BIN := bin/invigil
GO_TEST_TIMEOUT ?= 15m
BENCHTIME ?= 1s
FUZZTIME  ?= 20s
DOCKER_IMAGE ?= invigil:$(VERSION)

.PHONY: build deps test-deps web-deps models testdata run test lint lint-tools bench fuzz docker clean help eval

help:
	@echo "make run     install what is missing, build, fetch models, serve on $(ADDR)"
	@echo "make test    install what is missing and run every test"
	@echo "make build   write $(BIN)        make models  provision models into $(INVIGIL_MODELS)"
	@echo "make bench   run the benchmarks  make fuzz    short fuzz runs (FUZZTIME=$(FUZZTIME))"
	@echo "make docker  build the image $(DOCKER_IMAGE)"
	@echo "make eval    score the detectors on the labelled video set, write docs/EVAL.md"
	@echo "make lint    go vet, staticcheck, golangci-lint and tsc on the pages (make test runs it first)"

deps:
	scripts/install.sh build

test-deps:
	scripts/install.sh build test

# Always handed to go build: Go's own cache makes an unchanged rebuild cheap,
# and make cannot see which Go files changed.
build: deps
	go build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/invigil

models: build
	$(BIN) models fetch

testdata: test-deps
	scripts/testdata.sh

run: build models
	$(BIN) serve --addr $(ADDR) --data $(DATA)

# The browser tests' npm packages (playwright-core, pinned by the committed
# lockfile; it drives Debian's Chromium and downloads no browser). npm ci
# runs again only when the lockfile is newer than the installed tree.
WEB_DEPS := web/e2e/node_modules/.package-lock.json
web-deps: $(WEB_DEPS)
$(WEB_DEPS): web/e2e/package.json web/e2e/package-lock.json | test-deps
	cd web/e2e && npm ci --no-audit --no-fund
	touch $@

# The lint gate: go vet, staticcheck and golangci-lint (.golangci.yml),
# pinned in tools/go.mod (their own module, so their dependencies stay out
# of Invigil's go.sum) and built into bin/ through the Go module proxy.
LINT_TOOLS := bin/staticcheck bin/golangci-lint
lint-tools: $(LINT_TOOLS)
$(LINT_TOOLS): tools/go.mod tools/go.sum
	go -C tools build -o ../bin/ honnef.co/go/tools/cmd/staticcheck github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# The pages are type-checked too: tsc (npm typescript, pinned in
# web/e2e's lockfile) over their JSDoc-typed ES modules (web/tsconfig.json).
lint: deps lint-tools web-deps
	go vet -tags matprofile ./...
	bin/staticcheck -tags matprofile ./...
	bin/golangci-lint run ./...
	web/e2e/node_modules/.bin/tsc -p web

test: test-deps build models testdata web-deps lint
	# matprofile makes gocv count live Mats, so the leak tests run too.
	# -p 1: one package at a time, so the end-to-end media tests (which
	# measure onset delays in stream time) do not compete with the evaluation
	# set for the CPU.
	go test -p 1 -tags matprofile ./... -count=1 -timeout $(GO_TEST_TIMEOUT)

# Only packages that have benchmarks are built; their figures are printed as
# go test reports them (ns/op plus the custom metrics each benchmark adds).
SOURCES_GREP = grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=.cache --exclude-dir=node_modules
BENCH_PKGS = $(shell $(SOURCES_GREP) '^func Benchmark' . | xargs -r -n1 dirname | sort -u)
bench: build models testdata
	@pkgs="$(BENCH_PKGS)"; \
	if [ -z "$$pkgs" ]; then echo "no benchmarks yet"; exit 0; fi; \
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) -count=1 -timeout 30m $$pkgs

# go test fuzzes one target of one package per run, so each runs in turn.
fuzz: test-deps build models testdata
	@$(SOURCES_GREP) '^func Fuzz' . | sort | while read -r file; do \
	  dir=$$(dirname "$$file"); \
	  for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$file"); do \
	    echo "fuzz $$dir $$target for $(FUZZTIME)"; \
	    go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$dir"; \
	  done; \
	done

# Builds the labelled scenario videos into .cache/eval (reused while their
# content hash is unchanged), analyses them and writes docs/EVAL.md.
eval: build models testdata
	go run ./detectors/eval/cmd/evalreport -cache .cache/eval -out docs/EVAL.md

docker:
	docker build --build-arg VERSION=$(VERSION) -t $(DOCKER_IMAGE) .

# Only what the build made: ./data holds users' recordings and the model and
# test caches are expensive to refetch.
clean:
	rm -rf bin
