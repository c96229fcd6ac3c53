// Command bench-compare runs the same workloads against upstream
// systemd-machined 252 (Debian 12, D-Bus only), upstream 257 (the Debian 13
// tree that tests/setup/install-deps.sh debootstraps) and our bin/machined, one
// after the other on this machine, and writes a table (figure per daemon and
// the ratio ours/upstream) into a generated section of docs/BENCHMARKS.md plus
// an SVG chart of userdb lookup cost against machine count.
//
// `make bench-compare` runs it (`make bench-compare-quick` for small sizes);
// see docs/BENCHMARKS.md for what is measured and how.
//
// Layout:
//
//	main.go       flags, the stock-paths lock and checks, the run, the report
//	daemons.go    starting and stopping the three daemons and their buses
//	leaders.go    leader processes in cgroups and user namespaces (csrc/leaderfarm.c)
//	workloads.go  the workloads, and the table's rows
//	varlink.go    a lean Varlink client; dbus.go: buses and machine1 calls
//	nss.go        the C helpers, built with gcc at run time (csrc/nsslookup.c)
//	measure.go    rates, latencies, medians, RSS
//	report.go     the markdown table; svg.go: the chart
//
// The Varlink workloads deliberately use the lean client of varlink.go, not the
// project's client library (client/): they measure the daemons, and a client
// that decodes every reply into Go values would add its own cost to each
// figure, the same for every daemon but large next to the daemon's part of a
// call. The library's own cost shows in the `make bench` benchmarks of tests/
// that go through it.
//
// It needs root: cgroups, user namespaces, mounts for the 257 chroot, and the
// stock paths /run/systemd/userdb and /run/systemd/machines that machined 252
// and glibc's nss-systemd use, which it takes only under an exclusive flock of
// /tmp/stock-paths.lock and only when nobody else uses them.
package main
