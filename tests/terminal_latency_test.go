package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// startUpstream252 runs Debian 12's systemd-machined on bus, in a mount
// namespace of its own where its fixed paths (/run/systemd/machines and the
// userdb socket's directory) are directories of the returned runtime
// directory, laid out as ours: inSystemdNS and bootContainer take it as a daemon.
func startUpstream252(t *testing.T, bus *privateBus) *daemon {
	t.Helper()
	const bin = "/lib/systemd/systemd-machined"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("upstream machined 252 not installed: %v", err)
	}
	rt := newRuntimeDir(t)
	for _, d := range []string{"systemd/machines", "systemd/machine", "systemd/userdb"} {
		if err := os.MkdirAll(filepath.Join(rt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `set -e
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/systemd/machines /run/systemd/userdb
mount --bind "$RT/systemd/machines" /run/systemd/machines
mount --bind "$RT/systemd/userdb" /run/systemd/userdb
exec ` + bin
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "RT=" + rt, "DBUS_SYSTEM_BUS_ADDRESS=" + bus.addr, "SYSTEMD_LOG_LEVEL=info"}
	startLogged(t, cmd, filepath.Join(rt, "machined-252.log"), "machined 252")
	waitBusName(t, bus)
	return &daemon{t: t, dir: rt}
}

// TestShellLatency measures `machinectl shell NAME /bin/true` into a booted
// Debian 12 container, through our daemon and through upstream's 252 on the
// same host, alternating, and logs the medians: what a user waits for from
// the command to the shell's end. It runs only when MACHINED_SHELL_LATENCY
// gives the number of rounds; every shell must succeed.
func TestShellLatency(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("MACHINED_SHELL_LATENCY"))
	if rounds <= 0 {
		t.Skip("set MACHINED_SHELL_LATENCY=N to measure N shells per daemon")
	}
	sfx := strconv.Itoa(os.Getpid())
	ours, ourBus := startBusDaemon(t, "--units", "none", "--log-level", "warning")
	upBus := startPrivateBus(t)
	upstream := startUpstream252(t, upBus)
	type target struct {
		label string
		d     *daemon
		bus   *privateBus
		name  string
		took  []time.Duration
	}
	targets := []*target{
		{label: "ours", d: ours, bus: ourBus, name: "lat-ours-" + sfx},
		{label: "upstream 252", d: upstream, bus: upBus, name: "lat-252-" + sfx},
	}
	for _, tg := range targets {
		bootContainer(t, bootOpts{Name: tg.name, Daemon: tg.d, Bus: tg.bus})
	}
	for i := 0; i < rounds+1; i++ {
		for _, tg := range targets {
			start := time.Now()
			out, errOut, code := inSystemdNS(t, tg.d, tg.bus, -1, "machinectl", "--no-pager", "-q", "shell", tg.name, "/bin/true")
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("%s: machinectl shell: %d %s %s", tg.label, code, out, errOut)
			}
			if i > 0 { // the first round warms caches
				tg.took = append(tg.took, took)
			}
		}
	}
	for _, tg := range targets {
		slices.Sort(tg.took)
		t.Logf("machinectl shell %s /bin/true via %s: median %v, min %v, max %v over %d",
			tg.name, tg.label, tg.took[len(tg.took)/2], tg.took[0], tg.took[len(tg.took)-1], len(tg.took))
	}
}
