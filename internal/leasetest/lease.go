package leasetest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Lease is a write lease held on one file.
type Lease struct {
	f    *os.File
	path string
}

// Hold takes a write lease on path; it is released by Release or when the
// test ends.
func Hold(t testing.TB, path string) *Lease {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		f.Close()
		t.Fatalf("write lease on %s: %v", path, err)
	}
	l := &Lease{f: f, path: path}
	t.Cleanup(l.Release)
	return l
}

// Release lets the waiting opens through; it is idempotent.
func (l *Lease) Release() {
	if l.f == nil {
		return
	}
	unix.FcntlInt(l.f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	l.f.Close()
	l.f = nil
}

// Waiters counts the opens blocked on the lease, from /proc/locks, where each
// shows as a "N: -> ..." line under the lease's own line N.
func (l *Lease) Waiters(t testing.TB) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(l.path, &st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	suffix := ":" + strconv.FormatUint(st.Ino, 10) + " "
	id, n := "", 0
	for line := range strings.SplitSeq(string(data), "\n") {
		num, rest, _ := strings.Cut(line, ": ")
		switch {
		case strings.HasPrefix(rest, "LEASE") && strings.Contains(rest, suffix):
			id = num
		case id != "" && num == id && strings.HasPrefix(rest, "-> "):
			n++
		}
	}
	return n
}
