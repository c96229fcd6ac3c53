package service

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

// A registering leader's unit is read from its cgroup, as lookups read it (the
// unit back end has no say in it): registration and lookup by PID agree.
func TestRegisterReadsLeaderUnitFromCgroup(t *testing.T) {
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Units: &blockingUnits{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	leader := startSleep(t)
	path, err := proc.CgroupPath(leader.Process.Pid)
	if err != nil {
		t.Skipf("no cgroup v2 membership: %v", err)
	}
	wantUnit, wantSub := proc.UnitFromCgroupPath(path)
	mi, err := m.Register(context.Background(), root, RegisterRequest{Name: "a", Class: "vm", Leader: leader.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if mi.Unit != wantUnit || mi.Subgroup != wantSub {
		t.Errorf("unit %q subgroup %q, want %q %q (from %s)", mi.Unit, mi.Subgroup, wantUnit, wantSub, path)
	}
}
