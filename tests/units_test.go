package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machined-go/machined/client"
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
		registerReq(t, d, client.RegisterRequest{Name: name, LeaderPID: l.pid, AllocateUnit: true})
		m, err := getOne(t, d, name)
		if err != nil {
			t.Fatal(err)
		}
		unit := "machine-scoped\\x2d" + fmt.Sprint(i) + ".scope"
		if m.Unit != unit {
			t.Errorf("unit %v, want %s", m.Unit, unit)
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", l.pid))
		if !strings.Contains(string(cg), "/machine.slice/"+unit) {
			t.Errorf("leader not moved into the scope: %s", cg)
		}
		if target, err := os.Readlink(filepath.Join(d.stateDir(), "unit:"+unit)); err != nil || target != name {
			t.Errorf("unit link: %q %v", target, err)
		}
		c := dialClient(t, d)
		if verb == "Kill" {
			err = c.Kill(context.Background(), client.ByName(name), "", 15)
		} else {
			err = c.Terminate(context.Background(), client.ByName(name))
		}
		if err != nil {
			t.Fatalf("%s: %v", verb, err)
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
	register(t, d, "bare", l.pid)
	c := dialClient(t, d)
	if err := c.Kill(context.Background(), client.ByName("bare"), client.KillLeader, 0); daemonError(t, err) == nil {
		t.Error("signal 0 accepted")
	}
	if err := c.Terminate(context.Background(), client.ByName("bare")); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	eventually(t, "terminated machine removed", func() bool { return gone(t, d, "bare") })
}
