package nsenter

import (
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// reap waits for the program the daemon started to exit, on the netpoller
// (no thread waits), then collects its exit status so that no zombie stays,
// and releases what nsenter needed. The program stays the daemon's child for
// its whole life: nsenter execs it in place, since the session it leads must
// be its own (login hands the terminal over from the session leader to the
// user's shell, which it cannot do from a session someone else leads).
func reap(child *proc.PidRef, h held) {
	<-child.Exited()
	var info unix.Siginfo
	// P_PIDFD names this very process, never a PID reused meanwhile.
	unix.Waitid(unix.P_PIDFD, child.FD(), &info, unix.WEXITED|unix.WNOHANG, nil)
	child.Close()
	h.close()
	afterReap(child.PID)
}

// afterReap is told each reaped PID; tests replace it to know when a program
// is gone.
var afterReap = func(pid int) {}
