# Go drop-in replacement for systemd-machined. See README.md.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
BIN      := bin/machined
RUN_ARGS ?=
BENCH_COMPARE_ARGS ?=

# Install locations; every one can be overridden. dbus-daemon reads bus
# policies only from /usr/share/dbus-1/system.d and /etc/dbus-1/system.d, and
# polkitd actions only from /usr/share/polkit-1/actions: see README.md.
LIBEXECDIR       ?= $(PREFIX)/lib/machined
DATADIR          ?= $(PREFIX)/share
SYSTEMDUNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSTEMDUSERUNITDIR ?= $(PREFIX)/lib/systemd/user
DBUSSERVICEDIR   ?= $(DATADIR)/dbus-1/system-services
DBUSSESSIONSERVICEDIR ?= $(DATADIR)/dbus-1/services
POLKITACTIONSDIR ?= $(DATADIR)/polkit-1/actions
ifeq ($(PREFIX),/usr)
DBUSPOLICYDIR    ?= $(DATADIR)/dbus-1/system.d
else
DBUSPOLICYDIR    ?= /etc/dbus-1/system.d
endif

.PHONY: all build run test test-unit test-integration deps vet bench bench-compare bench-compare-quick bench-compare-duel fuzz chaos clean install uninstall

all: build

# Static (no cgo): nothing to load at exec, which every copy helper pays.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/machined

# Foreground daemon with working defaults (/run, system bus when reachable).
run: build
	./$(BIN) $(RUN_ARGS)

# Installs what the tests need (idempotent), then runs every test.
test: deps vet build
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/tests$$')
	$(GO) test -race -count=1 -p 1 -timeout 30m ./tests/...

deps:
	bash tests/setup/install-deps.sh

vet:
	$(GO) vet ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s -timeout 30m ./service/... ./images/... ./units/... ./varlink/... ./dbusshim/... ./tests/...

# The chaos suite at length: 20 crash rounds plus the hostile-load run, with
# their figures printed (`make test` runs 3 rounds).
chaos: build
	MACHINED_CHAOS_ROUNDS=$${MACHINED_CHAOS_ROUNDS:-20} $(GO) test -count=1 -v -run 'Chaos' -timeout 30m ./tests/ | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|chaos'

# Side by side with upstream machined 252 and 257 on this machine (root, slow:
# under 20 minutes); rewrites the generated section of docs/BENCHMARKS.md and
# docs/bench-compare-userdb.svg. Not part of `make test`.
bench-compare: deps build
	$(GO) build -o bin/bench-compare ./bench/compare
	./bin/bench-compare -ours $(BIN) $(BENCH_COMPARE_ARGS)

# The same with small sizes (a few minutes); prints the table, writes no docs.
bench-compare-quick:
	$(MAKE) bench-compare BENCH_COMPARE_ARGS="-quick $(BENCH_COMPARE_ARGS)"

# Only the D-Bus workloads (ListMachines of 500, register/unregister pairs),
# with all daemons running at once and their repetitions interleaved, so that
# the VM's noise hits each alike (under a minute); prints, writes no docs.
bench-compare-duel:
	$(MAKE) bench-compare BENCH_COMPARE_ARGS="-duel $(BENCH_COMPARE_ARGS)"

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./service/persist/
	$(GO) test -run '^$$' -fuzz FuzzReadMessage -fuzztime 30s ./varlink/
	$(GO) test -run '^$$' -fuzz FuzzDuplicateKey -fuzztime 30s ./varlink/
	$(GO) test -run '^$$' -fuzz FuzzEachMember -fuzztime 30s ./varlink/
	$(GO) test -run '^$$' -fuzz FuzzLazyWalk -fuzztime 30s ./varlink/
	$(GO) test -run '^$$' -fuzz FuzzLabel -fuzztime 30s ./dbusshim/machine1/
	$(GO) test -run '^$$' -fuzz FuzzParseHeader -fuzztime 30s ./dbusshim/busconn/

# The daemon, its systemd units (under systemd-machined's names, so everything
# that starts systemd-machined starts it), D-Bus activation and bus policy, and
# the polkit actions; and the per-user instance's units (for systemctl --user)
# and its activation on user buses. Honours DESTDIR and PREFIX.
install: build
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DBUSSERVICEDIR) \
		$(DESTDIR)$(DBUSPOLICYDIR) $(DESTDIR)$(POLKITACTIONSDIR) \
		$(DESTDIR)$(SYSTEMDUSERUNITDIR) $(DESTDIR)$(DBUSSESSIONSERVICEDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(LIBEXECDIR)/machined
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' packaging/systemd-machined.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/systemd-machined.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/systemd-machined.service
	install -m 0644 packaging/systemd-machined.socket $(DESTDIR)$(SYSTEMDUNITDIR)/systemd-machined.socket
	ln -sfn systemd-machined.service $(DESTDIR)$(SYSTEMDUNITDIR)/dbus-org.freedesktop.machine1.service
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' packaging/org.freedesktop.machine1.service.in > $(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.machine1.service
	chmod 0644 $(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.machine1.service
	install -m 0644 packaging/org.freedesktop.machine1.conf $(DESTDIR)$(DBUSPOLICYDIR)/org.freedesktop.machine1.conf
	install -m 0644 packaging/org.freedesktop.machine1.policy $(DESTDIR)$(POLKITACTIONSDIR)/org.freedesktop.machine1.policy
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' packaging/user/systemd-machined.service.in > $(DESTDIR)$(SYSTEMDUSERUNITDIR)/systemd-machined.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUSERUNITDIR)/systemd-machined.service
	install -m 0644 packaging/user/systemd-machined.socket $(DESTDIR)$(SYSTEMDUSERUNITDIR)/systemd-machined.socket
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' packaging/user/org.freedesktop.machine1.service.in > $(DESTDIR)$(DBUSSESSIONSERVICEDIR)/org.freedesktop.machine1.service
	chmod 0644 $(DESTDIR)$(DBUSSESSIONSERVICEDIR)/org.freedesktop.machine1.service

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/machined \
		$(DESTDIR)$(SYSTEMDUNITDIR)/systemd-machined.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/systemd-machined.socket \
		$(DESTDIR)$(SYSTEMDUNITDIR)/dbus-org.freedesktop.machine1.service \
		$(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.machine1.service \
		$(DESTDIR)$(DBUSPOLICYDIR)/org.freedesktop.machine1.conf \
		$(DESTDIR)$(POLKITACTIONSDIR)/org.freedesktop.machine1.policy \
		$(DESTDIR)$(SYSTEMDUSERUNITDIR)/systemd-machined.service \
		$(DESTDIR)$(SYSTEMDUSERUNITDIR)/systemd-machined.socket \
		$(DESTDIR)$(DBUSSESSIONSERVICEDIR)/org.freedesktop.machine1.service
	-rmdir $(DESTDIR)$(LIBEXECDIR)

clean:
	rm -rf bin
