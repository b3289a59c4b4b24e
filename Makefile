# The team's habits. CI runs .ci/run, which runs `go test -race ./...`
# with CI=true: real redis-server, Cluster and Sentinel tests must run
# there, never skip. `make` alone lists the targets.
.PHONY: help build run test ci lint bench fuzz sandbox loadtest
.DEFAULT_GOAL := help
SHELL := bash

STATICCHECK = v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

help:           ## this list: each target and what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build:          ## the binary, bin/webhook (VERSION=1.2.3 to set what `webhook version` prints)
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/webhook ./cmd/webhook

run:            ## the service on embedded defaults (embedded Redis and Q2 sandbox)
	go run ./cmd/webhook

test:           ## every test; real-Redis tests use REDIS_URL, else redis-server (skipped, and said how many, without it)
	set -o pipefail; go test -race -json ./... | go run ./internal/testredis/testsummary

ci:             ## what CI runs: the checks, then the tests on real redis-server processes
	bash .ci/run

lint:           ## gofmt, go vet and staticcheck
	test -z "$$(gofmt -l .)"
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...

bench:          ## benchmarks (REDIS_URL, else a redis-server they start, else miniredis)
	go test -run '^$$' -bench . -benchmem ./...

loadtest:       ## the load benchmark, service vs floor (BENCHMARKS.md); ARGS=--quick for a smoke run
	go run ./cmd/loadtest $(ARGS)

fuzz:           ## 30 s of each fuzz target
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/events
	go test -run '^$$' -fuzz FuzzMarketplace -fuzztime 30s ./internal/handlers
	go test -run '^$$' -fuzz 'FuzzFingerprint$$' -fuzztime 30s ./internal/canonjson
	go test -run '^$$' -fuzz FuzzFingerprintShapes -fuzztime 30s ./internal/canonjson
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 30s ./internal/signature
	go test -run '^$$' -fuzz FuzzEventURL -fuzztime 30s ./internal/appdirect

sandbox:        ## the sandbox alone on :9090 (Q2, QBD Connect, Helix, AppDirect)
	go run ./cmd/webhook sandbox --addr 127.0.0.1:9090
