package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func startSleepAs(t *testing.T, uid uint32) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start processes as another user")
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// An unprivileged uid holds at most MaxMachinesPerUID machines; the one past it
// is refused with ErrTooManyMachines, a machine that goes frees its place, and
// root (like other users) is not affected.
func TestMachinesPerUIDCap(t *testing.T) {
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), MaxMachinesPerUID: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx := context.Background()
	nobody := Caller{UID: 65534, GID: 65534, PIDFD: -1}
	reg := func(c Caller, name string, leader *exec.Cmd) error {
		_, err := m.Register(ctx, c, RegisterRequest{Name: name, Class: "vm", Leader: leader.Process.Pid})
		return err
	}
	for i := range 3 {
		if err := reg(nobody, fmt.Sprintf("n%d", i), startSleepAs(t, 65534)); err != nil {
			t.Fatalf("machine %d of 3: %v", i+1, err)
		}
	}
	err = reg(nobody, "n3", startSleepAs(t, 65534))
	if !errors.Is(err, ErrTooManyMachines) {
		t.Fatalf("machine 4 of 3: %v, want ErrTooManyMachines", err)
	}
	if _, ok := AsInvalidArg(err); ok {
		t.Errorf("the cap is not an invalid argument: %v", err)
	}
	// A refused registration takes no place; another user and root are not capped.
	other := Caller{UID: 4242, GID: 4242, PIDFD: -1}
	if err := reg(other, "o0", startSleepAs(t, 4242)); err != nil {
		t.Errorf("another user: %v", err)
	}
	for i := range 4 {
		if err := reg(root, fmt.Sprintf("r%d", i), startSleep(t)); err != nil {
			t.Errorf("root machine %d: %v", i+1, err)
		}
	}
	// Freed places are given back, by unregistering and by a leader's exit.
	if err := m.Unregister(ctx, nobody, Selector{Name: "n0"}); err != nil {
		t.Fatal(err)
	}
	exiting := startSleepAs(t, 65534)
	if err := reg(nobody, "n4", exiting); err != nil {
		t.Fatalf("after an unregister: %v", err)
	}
	exiting.Process.Kill()
	exiting.Wait()
	waitFor(t, "n4 finalized", func() bool { _, err := m.Get(root, Selector{Name: "n4"}); return err != nil })
	if err := reg(nobody, "n5", startSleepAs(t, 65534)); err != nil {
		t.Errorf("after a leader exit: %v", err)
	}
	if err := reg(nobody, "n6", startSleepAs(t, 65534)); !errors.Is(err, ErrTooManyMachines) {
		t.Errorf("over the cap again: %v", err)
	}
}

// Failing to pin a leader for want of fds is the daemon's failure, reported with
// its errno, not "no such leader"; a leader that does not exist still is.
func TestLeaderOpenErrno(t *testing.T) {
	m := newTestManager(t)
	leader := startSleep(t)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The lowest free fd becomes the limit: the next fd anyone opens fails.
	free, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(free)
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	_, err = m.Register(context.Background(), root, RegisterRequest{Name: "fdless", Class: "vm", Leader: leader.Process.Pid})
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, syscall.EMFILE) {
		t.Errorf("Register out of fds: %v, want EMFILE", err)
	}
	if ia, ok := AsInvalidArg(err); ok {
		t.Errorf("out of fds reported as invalid %s", ia.Field)
	}

	if _, err := m.Register(context.Background(), root, RegisterRequest{Name: "ghost", Class: "vm", Leader: 1 << 30}); !isInvalidArg(err, "leader") {
		t.Errorf("Register of a missing leader: %v, want invalid leader", err)
	}
}

// Machines restored after a restart count against their owner's cap.
func TestMachinesPerUIDCapAfterRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "machines")
	cfg := Config{StateDir: dir, MaxMachinesPerUID: 2}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nobody := Caller{UID: 65534, GID: 65534, PIDFD: -1}
	for i := range 2 {
		if _, err := m.Register(context.Background(), nobody, RegisterRequest{Name: fmt.Sprintf("n%d", i), Class: "vm", Leader: startSleepAs(t, 65534).Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	m, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if restored, _ := m.Restore(); restored != 2 {
		t.Fatalf("restored %d machines, want 2", restored)
	}
	if _, err := m.Register(context.Background(), nobody, RegisterRequest{Name: "n2", Class: "vm", Leader: startSleepAs(t, 65534).Process.Pid}); !errors.Is(err, ErrTooManyMachines) {
		t.Errorf("third machine after restore: %v, want ErrTooManyMachines", err)
	}
}
