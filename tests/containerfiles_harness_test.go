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
