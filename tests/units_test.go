package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func needCgroup2(t *testing.T) {
	t.Helper()
	needRoot(t)
	for _, p := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Skip("needs a cgroup2 hierarchy")
}

// allocateUnit creates machine-<name>.scope with the built-in cgroup backend;
// Kill all and Terminate work on it.
func TestAllocateUnitCgroup(t *testing.T) {
	needCgroup2(t)
	d := startDaemon(t, "--units", "cgroup", "--stop-timeout", "2s")
	for i, verb := range []string{"Kill", "Terminate"} {
		l := spawnLeader(t)
		name := fmt.Sprintf("scoped-%d", i)
		register(t, d, name, l.pid, map[string]any{"allocateUnit": true})
		m, e := listOne(t, d, name)
		if e != nil {
			t.Fatal(e.Name)
		}
		unit := "machine-scoped\\x2d" + fmt.Sprint(i) + ".scope"
		if m["unit"] != unit {
			t.Errorf("unit %v, want %s", m["unit"], unit)
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", l.pid))
		if !strings.Contains(string(cg), "/machine.slice/"+unit) {
			t.Errorf("leader not moved into the scope: %s", cg)
		}
		if target, err := os.Readlink(filepath.Join(d.stateDir(), "unit:"+unit)); err != nil || target != name {
			t.Errorf("unit link: %q %v", target, err)
		}
		params := map[string]any{"name": name}
		if verb == "Kill" {
			params["signal"] = 15
		}
		if _, e := d.call(t, "io.systemd.Machine."+verb, params); e != nil {
			t.Fatalf("%s: %s %s", verb, e.Name, paramsOf(e))
		}
		eventually(t, verb+" stops the machine", func() bool { return gone(t, d, name) })
		if _, err := os.Lstat(filepath.Join(d.stateDir(), "unit:"+unit)); !os.IsNotExist(err) {
			t.Errorf("unit link left behind: %v", err)
		}
	}
}

// Terminate and Kill work for machines that live in no unit at all.
func TestTerminateWithoutUnit(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--units", "none")
	l := spawnLeader(t)
	register(t, d, "bare", l.pid, nil)
	if _, e := d.call(t, "io.systemd.Machine.Kill", map[string]any{"name": "bare", "whom": "leader", "signal": 0}); e == nil {
		t.Error("signal 0 accepted")
	}
	if _, e := d.call(t, "io.systemd.Machine.Terminate", map[string]any{"name": "bare"}); e != nil {
		t.Fatalf("Terminate: %s %s", e.Name, paramsOf(e))
	}
	eventually(t, "terminated machine removed", func() bool { return gone(t, d, "bare") })
}
