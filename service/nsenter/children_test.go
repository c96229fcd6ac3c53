package nsenter

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

// A program that exits before it is recorded has had its SIGCHLD already
// (with nobody to reap it, or before the watch began): recording it collects
// it.
func TestAdoptReapsProgramAlreadyExited(t *testing.T) {
	reaps := watchReaps(t)
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := proc.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	<-ref.Exited() // a zombie now, its SIGCHLD sent
	adopt(pid, held{mnt: -1, user: -1, root: -1})
	if got := <-reaps; got != pid {
		t.Fatalf("reaped %d, want %d", got, pid)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("program %d still there after reaping: %v", pid, err)
	}
}

// A zombie leader keeps its PID but has no root any more: that is ESRCH, as
// for one already reaped, not the ENOENT of /proc.
func TestOpenRootExited(t *testing.T) {
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := proc.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	<-ref.Exited()
	if _, err := openRoot(ref); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("zombie: %v, want ESRCH", err)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
	if _, err := openRoot(ref); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("reaped: %v, want ESRCH", err)
	}
	self, err := proc.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	fd, err := openRoot(self)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
}
