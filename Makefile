# Go drop-in replacement for systemd-machined. See README.md.
GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
BIN      := bin/machined
RUN_ARGS ?=
BENCH_COMPARE_ARGS ?=

.PHONY: all build run test test-unit test-integration deps vet bench bench-compare bench-compare-quick fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/machined

# Foreground daemon with working defaults (/run, system bus when reachable).
run: build
	./$(BIN) $(RUN_ARGS)

# Installs what the tests need (idempotent), then runs every test.
test: deps vet build
	$(GO) test -race -count=1 ./service/... ./varlink/... ./userdb/... ./dbusshim/... ./cmd/...
	$(GO) test -race -count=1 -p 1 -timeout 30m ./tests/...

deps:
	bash tests/setup/install-deps.sh

vet:
	$(GO) vet ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./service/... ./varlink/... ./tests/...

# Side by side with upstream machined 252 and 257 on this machine (root, slow:
# under 20 minutes); rewrites the generated section of docs/BENCHMARKS.md and
# docs/bench-compare-userdb.svg. Not part of `make test`.
bench-compare: deps build
	$(GO) build -o bin/bench-compare ./cmd/bench-compare
	./bin/bench-compare -ours $(BIN) $(BENCH_COMPARE_ARGS)

# The same with small sizes (a few minutes); prints the table, writes no docs.
bench-compare-quick:
	$(MAKE) bench-compare BENCH_COMPARE_ARGS="-quick $(BENCH_COMPARE_ARGS)"

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./service/persist/
	$(GO) test -run '^$$' -fuzz FuzzReadMessage -fuzztime 30s ./varlink/

clean:
	rm -rf bin
