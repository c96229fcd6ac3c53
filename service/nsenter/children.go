package nsenter

import (
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The programs the daemon started stay its children for their whole life:
// nsenter execs the program in place, since the session it leads must be its
// own (login hands the terminal over from the session leader to the user's
// shell, which it cannot do from a session someone else leads). They are
// reaped on SIGCHLD, each by its own PID, so that no other child of the daemon
// is collected behind its waiter's back, no thread waits and a live program
// costs the daemon no descriptor once it runs.

// child is a program started and not yet reaped.
type child struct {
	held held // nsenter's descriptors, until the program runs (release)
}

// children are the programs started and not yet reaped, by PID; a PID cannot
// be reused while it is in here, as the process is ours and unreaped.
var children = struct {
	sync.Mutex
	m        map[int]*child
	watching bool
}{m: map[int]*child{}}

// afterReap is told each reaped PID; tests replace it (holding children's
// lock) to know when a program is gone.
var afterReap = func(pid int) {}

// adopt records a program just started, with the descriptors nsenter opens,
// and starts the SIGCHLD watch on first use. A program that exited before it
// was recorded is collected here, its SIGCHLD having found nobody to reap.
func adopt(pid int, h held) {
	children.Lock()
	children.m[pid] = &child{held: h}
	if !children.watching {
		children.watching = true
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				reapExited()
			}
		}()
	}
	children.Unlock()
	reapExited()
}

// reapExited collects every recorded program that has exited; the signal
// coalesces, so each wakeup looks at all of them.
func reapExited() {
	var reaped []int
	children.Lock()
	told := afterReap
	for pid, c := range children.m {
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid || err == unix.ECHILD {
			c.held.close()
			delete(children.m, pid)
			reaped = append(reaped, pid)
		}
	}
	children.Unlock()
	for _, pid := range reaped {
		told(pid)
	}
}

// releaseRunning closes the descriptors of the programs nsenter has already
// exec'd: it opened them long before. nsenter gives no sign of the exec, so
// each spawn looks (the daemon's executable link of the process no longer
// being nsenter), which keeps the descriptors of at most the spawns still in
// flight.
func releaseRunning(nsenter unix.Stat_t) {
	children.Lock()
	defer children.Unlock()
	for pid, c := range children.m {
		if c.held.closed() {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st); err == nil && (st.Dev != nsenter.Dev || st.Ino != nsenter.Ino) {
			c.held.close()
		}
	}
}
