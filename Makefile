# Go drop-in replacement for systemd-machined. See README.md.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
BIN      := bin/machined
RUN_ARGS ?=

.PHONY: all build run test test-unit test-integration deps vet bench fuzz chaos clean

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

# The chaos suite at length: 20 crash rounds plus the hostile-load run, with
# their figures printed (`make test` runs 3 rounds).
chaos: build
	MACHINED_CHAOS_ROUNDS=$${MACHINED_CHAOS_ROUNDS:-20} $(GO) test -count=1 -v -run 'Chaos' -timeout 30m ./tests/ | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|chaos'

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./service/persist/
	$(GO) test -run '^$$' -fuzz FuzzReadMessage -fuzztime 30s ./varlink/

clean:
	rm -rf bin
