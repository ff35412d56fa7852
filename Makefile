# v6dp: build, test and demo. The test, demo and bench targets need root.
GO       ?= go
BIN      := bin/v6dp
PKGS     := clang llvm libbpf-dev bpftool linux-libc-dev iproute2 ndisc6 ndppd \
            iputils-ping traceroute tcpdump ethtool netsniff-ng iperf3 docker.io \
            busybox-static iptables nftables podman netavark bird2 curl
GOFLAGS_TEST ?= -count=1 -p 1 -timeout 20m

.PHONY: all deps generate build test unit fuzz demo bench lint clean

all: build

# Installs the Debian packages and Go modules the build and tests need.
# Idempotent: apt runs only when a package is missing.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

# Rebuilds the BPF objects and their Go bindings (committed, so a plain
# build needs no clang).
generate:
	$(GO) generate ./loader/...

# What `v6dp version` prints.
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || echo 0.1.0-dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/v6dp

# Unit tests, BPF packet tests and the integration tests in namespaces,
# then every skipped test with its reason (test/testreport); the exit code
# is go test's.
test: SHELL := /bin/bash
test: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make test: needs root (the integration tests build namespaces)"; exit 1; }
	$(GO) vet ./...
	$(GO) build -o bin/testreport ./test/testreport
	set -o pipefail; $(GO) test -json $(GOFLAGS_TEST) ./... | bin/testreport

unit:
	$(GO) test -count=1 ./ctrl/...

# Every fuzz target (func Fuzz* in a _test.go) for FUZZTIME each, one after
# the other (go test fuzzes one target of one package at a time), by
# test/fuzzrun. Seeds and failing inputs live in the package's
# testdata/fuzz/; an input that fails is written there, and fails the run:
# commit it with the fix, it is a regression case from then on. A target
# that ran its whole time and wrote nothing, but that go1.26's coordinator
# ended with "context deadline exceeded" (golang/go#75804), is reported as
# such and passes.
FUZZTIME ?= 20s
fuzz: deps
	$(GO) run ./test/fuzzrun -fuzztime $(FUZZTIME)

# The seed's NDP-proxy topology in namespaces, with a few containers.
demo: deps build
	./test/demo.sh $(BIN)

# Side-by-side figures against the kernel path and ndppd (not part of test):
# medians of 3 runs with min and max, about 20 minutes. Exits non-zero when a
# row fails its correctness gate (wrong answers, corrupted datagrams, lost
# endpoints), never on a figure. V6DP_BENCH_QUICK=1: one small smoke run;
# V6DP_BENCH_N=64, V6DP_BENCH_RUNS=1, V6DP_BENCH_ROWS=v6dp-tc,... narrow it;
# BENCH=Scale10k runs only that case (BENCH=NDPFlood, BENCH=Forward the others).
BENCH ?= .
bench: deps build
	$(GO) test -count=1 -p 1 -timeout 60m -run '^$$' -bench '$(BENCH)' -benchtime 1x ./test/bench/ -v

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v clang-format >/dev/null || { echo "lint: clang-format missing (make deps installs it)"; exit 1; }
	clang-format --dry-run --Werror bpf/*.c bpf/lib/*.h headers/*.h

clean:
	rm -rf bin
