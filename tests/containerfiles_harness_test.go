package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// spawnContainer starts a leader chrooted into root in a mount namespace of
// its own with private propagation, so nothing mounted inside reaches the
// host. With shift > 0 it also runs in a user namespace mapping 0..65535 to
// shift..shift+65535, as its root (host uid shift).
func spawnContainer(t *testing.T, root string, shift int) *leader {
	t.Helper()
	needRoot(t)
	needMountNS(t)
	attr := &syscall.SysProcAttr{Setsid: true}
	if shift > 0 {
		needUserNS(t)
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: shift, Size: 65536}}
		attr.Cloneflags = syscall.CLONE_NEWUSER
		attr.UidMappings, attr.GidMappings = m, m
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "chroot", root, "/bin/sleep", "100000")
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &leader{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(l.kill)
	eventually(t, "leader chrooted into "+root, func() bool {
		got, _ := os.Readlink(procPath(l.pid, "root"))
		return got == root || strings.HasSuffix(got, root)
	})
	return l
}

func procPath(pid int, rest string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), rest)
}

// inContainer is path inside leader's root, as the host reaches it.
func inContainer(l *leader, path string) string {
	return procPath(l.pid, "root") + path
}

// statOwner is the uid and gid of path, not following a final symlink.
func statOwner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// leaseHold holds a write lease on a file: every open of it for reading then
// waits until the lease is released, which holds a copy that reads the file
// at exactly that point, for as long as the test needs (within the kernel's
// lease-break-time, 45 s by default).
type leaseHold struct {
	f    *os.File
	path string
}

func holdLease(t *testing.T, path string) *leaseHold {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		f.Close()
		t.Fatalf("write lease on %s: %v", path, err)
	}
	h := &leaseHold{f: f, path: path}
	t.Cleanup(h.release)
	return h
}

// waiters counts the opens blocked on the lease, from /proc/locks, where each
// shows as a "N: -> LEASE BREAKER" line under the lease's own line N.
func (h *leaseHold) waiters(t *testing.T) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(h.path, &st); err != nil {
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

func (h *leaseHold) release() {
	if h.f == nil {
		return
	}
	unix.FcntlInt(h.f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	h.f.Close()
	h.f = nil
}

// tempLeft lists what copies left under a temporary name in dir.
func tempLeft(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".#machined-copy-") {
			left = append(left, e.Name())
		}
	}
	return left
}
