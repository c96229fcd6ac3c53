// Package dialas connects to a unix socket under another user's credentials,
// for tests that play an unprivileged client of the daemon from a root test
// process.
//
// It must import nothing of this module.
package dialas

import (
	"fmt"
	"net"
	"runtime"
	"syscall"
)

// Unix connects to path with uid and gid as the credentials the server sees
// (SO_PEERCRED records them at connect). The switch happens on a locked thread
// of a goroutine that never unlocks it, so the runtime throws that thread
// away instead of running other goroutines under the borrowed identity.
func Unix(path string, uid, gid int) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Raw syscalls: syscall.Setresuid would change every thread.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
			ch <- result{err: fmt.Errorf("setresgid: %w", e)}
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- result{err: fmt.Errorf("setresuid: %w", e)}
			return
		}
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
