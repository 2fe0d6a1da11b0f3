# stockcast: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
# The Go toolchain: go1.27.3, which the go command fetches from the module
# proxy (the machine's go1.26.8 has standard-library vulnerabilities that
# govulncheck reports; docs/security.md). go.mod keeps `go 1.26.0`, so a
# plain go1.26 still builds, but `make test` and the images use this one.
export GOTOOLCHAIN ?= go1.27.3
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
export PATH := $(TOOLS):$(PATH)

# Pinned code generators, installed with `go install` (no remote buf plugins:
# the registry cannot be reached from our machines).
BUF_VERSION                ?= v1.75.0
PROTOC_GEN_GO_VERSION      ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.0
HELM_VERSION               ?= v3.22.0
# govulncheck and the Go vulnerability database: golang.org/x/vulndb is a Go
# module, so its OSV files come through the module proxy (docs/security.md).
GOVULNCHECK_VERSION        ?= v1.9.0
VULNDB_VERSION             ?= v0.0.0-20261105234957-e22db6528018

SERVICES := ingest feature forecast replenishment console
TEST_TIMEOUT ?= 30m

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install missing system packages the system runs on (redis-server, clickhouse-server) with apt.
	@scripts/install-deps.sh

.PHONY: test-deps
test-deps: ## Install, besides deps, what the tests need (etcd-server, prometheus's promtool, gcc, chromium).
	@scripts/install-deps.sh --test

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## Install the pinned code generators into bin/tools.

$(TOOLS)/buf:
	GOBIN=$(TOOLS) GOFLAGS= GOWORK=off $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) GOFLAGS= GOWORK=off $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) GOFLAGS= GOWORK=off $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/helm:
	GOBIN=$(TOOLS) GOFLAGS= GOWORK=off $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: helm-lint
helm-lint: $(TOOLS)/helm ## Lint the Helm chart.
	helm lint helm/stockcast

.PHONY: manifests
manifests: $(TOOLS)/helm ## Render the chart into deploy/k8s (plain manifests for users without Helm).
	helm template stockcast helm/stockcast > deploy/k8s/stockcast.yaml

.PHONY: check-manifests
check-manifests: $(TOOLS)/helm ## Fail if deploy/k8s is not the chart rendered with default values.
	@helm template stockcast helm/stockcast | diff -u deploy/k8s/stockcast.yaml - && echo "deploy/k8s is up to date"

# kube-apiserver, built from the Go module proxy by the test/k8s module (kept
# out of the root go.mod); cached in bin/ until test/k8s/go.mod changes.
KUBE_APISERVER := $(BIN)/kube-apiserver
$(KUBE_APISERVER): test/k8s/go.mod test/k8s/go.sum
	@mkdir -p $(BIN)
	cd test/k8s && GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 $(GO) build -trimpath -o $(KUBE_APISERVER) k8s.io/kubernetes/cmd/kube-apiserver

# The first build of kube-apiserver takes ~15 min of 2 cores (72 min wall on a
# machine shared by five builds); later ones reuse bin/ or the Go build cache.
# It is a test fixture, not something we ship, so it is built with the
# machine's own Go (GOTOOLCHAIN=local), whose build cache already holds it.
.PHONY: test-k8s
test-k8s: test-deps $(TOOLS)/helm $(KUBE_APISERVER) ## Chart and deploy/k8s: strict-decode every object, apply them to a real kube-apiserver + etcd; promtool on the alert rules.
	promtool check rules helm/stockcast/files/alerts.rules.yaml
	promtool test rules test/k8s/alerts_test.yaml
	python3 -m json.tool helm/stockcast/files/dashboard.json >/dev/null
	cd test/k8s && GOWORK=off GOFLAGS=-mod=readonly HELM=$(TOOLS)/helm KUBE_APISERVER=$(KUBE_APISERVER) $(GO) test -trimpath -tags apiserver -count=1 -timeout 20m ./...

IMAGE_REPO ?= ghcr.io/stockcast/stockcast
IMAGE_TAG  ?= $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' helm/stockcast/Chart.yaml)
.PHONY: images
images: ## Build the container images with docker: $(IMAGE_REPO)-<service>:$(IMAGE_TAG), one per service and the stockcast command.
	for s in ingest feature forecast replenishment console stockcast; do \
		docker build --build-arg SERVICE=$$s -t $(IMAGE_REPO)-$$s:$(IMAGE_TAG) . || exit 1; done

.PHONY: generate
generate: tools ## Generate Go from the .proto files (committed beside them).
	buf generate

.PHONY: check-generated
check-generated: tools ## Fail if the committed generated code differs from what buf generates.
	@scripts/check-generated.sh

.PHONY: lint
lint: tools ## buf lint, gofmt and go vet.
	buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./... ./proto/...

.PHONY: build
build: ## Build the services and the stockcast command into bin/.
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./services/,$(addsuffix /cmd/...,$(SERVICES))) ./cmd/stockcast

.PHONY: test
test: test-deps browser-deps lint check-generated helm-lint check-manifests vuln test-k8s build test-race ## Everything CI runs: lint, generated-code check, unit, integration and end-to-end tests.
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... ./proto/...
	$(MAKE) --no-print-directory test-chaos

# The fault suite has the build tag chaos, so `go test ./...` above does not
# run it a second time (docs/chaos.md).
.PHONY: test-chaos
test-chaos: test-deps ## The fault suite: 100k real lines replayed without and with faults (services killed, ClickHouse and Redis restarted), exactness and backpressure checked (in `make test`).
	$(GO) vet -tags chaos ./test/chaos/
	$(GO) test -tags chaos -count=1 -timeout 40m -v ./test/chaos/

# With -kafka.concurrent-partitions the Kafka consumer calls the handlers
# concurrently: the consumer and the forecast log run under the race detector.
RACE_PKGS := ./pkg/kafkax ./services/forecast/internal/store

.PHONY: test-race
test-race: test-deps ## The concurrently called handlers and their tests under the race detector (needs gcc).
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

.PHONY: console-assets
console-assets: ## Rebuild the console's web app into services/console/web/dist (committed, embedded; reproducible).
	cd services/console/web && npm ci --no-audit --no-fund && npm run build

.PHONY: browser-deps
browser-deps: test-deps ## Install what the console's browser tests need: chromium (apt) and the npm packages.
	@[ -d services/console/web/node_modules/playwright-core ] || (cd services/console/web && npm ci --no-audit --no-fund)

.PHONY: test-browser
test-browser: browser-deps ## The console's browser tests in chromium (screenshots in services/console/web/e2e/artifacts); `make test` runs them too.
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run TestBrowser -v ./services/console/internal/app/

.PHONY: demo
demo: deps build ## Run the whole pipeline locally on the real Online Retail order lines.
	$(BIN)/stockcast demo --bin-dir $(BIN) $(DEMO_FLAGS)

.PHONY: bench-pipeline
bench-pipeline: deps build ## Replay throughput and order-to-forecast latency against the raw broker rate.
	$(BIN)/stockcast bench-pipeline --bin-dir $(BIN) $(BENCH_FLAGS)

.PHONY: bench-load
bench-load: deps build ## stockcast loadgen: synthetic Zipf order lines at a target rate; throughput, p50/p99/p999 latency, CPU and memory per service (docs/load.md).
	$(BIN)/stockcast loadgen --bin-dir $(BIN) $(LOAD_FLAGS)

.PHONY: bench-forecast
bench-forecast: build ## stockcast's forecasters vs R forecast, Prophet, statsmodels and XGBoost on the same splits (DATA=m5|online-retail, ORIGINS=1).
	STOCKCAST=$(BIN)/stockcast bench/peers/run.sh

.PHONY: bench-replenishment
bench-replenishment: build ## Replenishment policies on real tiny_m5 demand (lead time 7, weekly review): fill rate vs inventory value.
	$(BIN)/stockcast simulate -dataset m5 -lead-time 7 -review 7 -plot $(BIN)/replenishment-m5.png $(SIMULATE_FLAGS)

.PHONY: bench
bench: ## Go micro-benchmarks of the hot paths.
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./services/...

# Fuzzing: each target of FUZZ_PKGS for FUZZTIME; the seed corpora in
# testdata/fuzz run in every `go test` anyway. Go before 1.27 may end a
# duration-limited run with "context deadline exceeded" and no crasher
# (golang/go#75804): a failure counts only when it wrote a reproducer.
FUZZTIME  ?= 20s
FUZZ_PKGS := ./services/ingest/internal/events

.PHONY: fuzz
fuzz: ## Run every Go fuzz target for FUZZTIME each (default 20s, or a count like 100000x); not part of `make test`.
	@failed=0; for pkg in $(FUZZ_PKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target"; dir=$$pkg/testdata/fuzz/$$target; \
	    before=$$(ls $$dir 2>/dev/null | wc -l); \
	    if ! $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -parallel $${FUZZ_PARALLEL:-2} $$pkg; then \
	      if [ "$$(ls $$dir 2>/dev/null | wc -l)" != "$$before" ]; then failed=1; echo "FAIL: $$target wrote a reproducer to $$dir"; \
	      else echo "no reproducer written: the Go fuzz coordinator's deadline race (golang/go#75804), not a failure"; fi; \
	    fi; \
	  done; \
	done; exit $$failed

VULNDB := $(BIN)/vulndb/$(VULNDB_VERSION)

$(TOOLS)/govulncheck:
	GOBIN=$(TOOLS) GOWORK=off GOFLAGS= $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(VULNDB)/index/db.json:
	rm -rf $(VULNDB).tmp && GOWORK=off GOFLAGS= $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
	  -vulns "$$(GOWORK=off $(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(VULNDB).tmp
	rm -rf $(VULNDB) && mv $(VULNDB).tmp $(VULNDB)

.PHONY: vuln
vuln: $(TOOLS)/govulncheck $(VULNDB)/index/db.json ## govulncheck's source analysis against the Go vulnerability database of VULNDB_VERSION (built offline).
	govulncheck -db file://$(VULNDB) ./...

.PHONY: mod-check
mod-check: ## Fail if go.mod/go.sum are not tidy.
	$(GO) mod tidy -diff
	cd proto && GOWORK=off $(GO) mod tidy -diff

.PHONY: clean
clean: ## Remove build output and demo data.
	rm -rf $(BIN) .data
