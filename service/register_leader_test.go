package service

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A leader that has exited (a zombie: its PID still pins it, but it is gone)
// is refused, whatever the class, and leaves no state file or machine behind.
// Register reads the id maps without a pidfd check of their own: the liveness
// check before publishing is what refuses it.
func TestRegisterRefusesExitedLeader(t *testing.T) {
	m := newTestManager(t)
	for _, class := range []string{"container", "vm"} {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// Wait for the exit without reaping: WNOWAIT leaves the zombie.
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatal(err)
		}
		_, err := m.Register(context.Background(), root, RegisterRequest{Name: "z-" + class, Class: class, Leader: cmd.Process.Pid})
		cmd.Wait()
		if ia, ok := AsInvalidArg(err); !ok || ia.Field != "leader" {
			t.Fatalf("%s with an exited leader: %v, want an invalid leader", class, err)
		}
		if _, err := m.Get(root, Selector{Name: "z-" + class}); err == nil {
			t.Errorf("%s: machine registered with an exited leader", class)
		}
		if _, err := os.Stat(filepath.Join(m.cfg.StateDir, "z-"+class)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: state file left behind: %v", class, err)
		}
	}
}
