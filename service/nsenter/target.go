package nsenter

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// childNamespaces are the namespaces the daemon enters on a disposable thread
// before it forks: each acts on the children of the thread that joins it (the
// PID namespace only on them), none needs a single-threaded caller.
var childNamespaces = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID},
}

// target is a leader pinned for a spawn: descriptors of its namespaces, root
// directory and cgroup, all opened while its pidfd still named it. close
// releases them.
type target struct {
	children []int // childNamespaces, in that order
	mnt      int
	user     int // -1 when the leader shares our user namespace
	root     int // O_PATH, opened as the owner
	cgroup   int // -1 when there is no cgroup v2 membership to join
}

// pinTarget opens the leader's namespaces and cgroup and takes over root (the
// leader's root directory, already opened): on success the target owns it. The
// pidfd is checked after the opens, so a PID reused meanwhile fails here
// rather than leading somewhere else.
func pinTarget(leader *proc.PidRef, root int) (*target, error) {
	t := &target{mnt: -1, user: -1, root: root, cgroup: -1}
	fail := func(err error) (*target, error) {
		t.close()
		return nil, err
	}
	for _, ns := range childNamespaces {
		fd, err := leader.OpenNS(ns.name)
		if err != nil {
			return fail(err)
		}
		t.children = append(t.children, fd)
	}
	var err error
	if t.mnt, err = leader.OpenNS("mnt"); err != nil {
		return fail(err)
	}
	user, err := leader.OpenNS("user")
	if err != nil {
		return fail(err)
	}
	same, err := sameNamespace(user, "/proc/self/ns/user")
	if err != nil || same {
		unix.Close(user)
		if err != nil {
			return fail(err)
		}
	} else {
		t.user = user
	}
	if t.cgroup, err = openCgroup(leader.PID); err != nil {
		return fail(err)
	}
	if err := leader.Verify(); err != nil {
		return fail(err)
	}
	return t, nil
}

// sameNamespace reports whether the namespace fd names is the one at path.
func sameNamespace(fd int, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		return false, fmt.Errorf("stat namespace: %w", err)
	}
	if err := unix.Stat(path, &b); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// openCgroup opens the leader's cgroup v2 directory, for the program to be
// born into it: it then counts against the container's resources and goes
// with it, and not with the daemon's cgroup (a restart of the daemon by its
// service manager does not end the sessions). None on a host without cgroup
// v2, or when the leader's cgroup lies outside our view of the tree (a
// daemon in a cgroup namespace of its own): the program then stays in ours.
func openCgroup(pid int) (int, error) {
	path, err := proc.CgroupPath(pid)
	if errors.Is(err, syscall.ENODATA) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	if path == "/.." || strings.HasPrefix(path, "/../") {
		return -1, nil
	}
	mount, err := proc.Cgroup2Root()
	if err != nil {
		return -1, nil
	}
	fd, err := unix.Open(filepath.Join(mount, path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s of pid %d: %w", path, pid, err)
	}
	return fd, nil
}

func (t *target) close() {
	for _, fd := range append(t.children, t.mnt, t.user, t.root, t.cgroup) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	t.children = nil
	t.mnt, t.user, t.root, t.cgroup = -1, -1, -1, -1
}

// held are the descriptors nsenter opens by name, kept open until the program
// is reaped.
type held struct {
	mnt, user, root int
}

// handOver moves the descriptors nsenter opens out of t, for the caller to
// keep until nsenter is sure to have opened them; close no longer closes them.
func (t *target) handOver() held {
	h := held{mnt: t.mnt, user: t.user, root: t.root}
	t.mnt, t.user, t.root = -1, -1, -1
	return h
}

func (h *held) close() {
	for _, fd := range []int{h.mnt, h.user, h.root} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	h.mnt, h.user, h.root = -1, -1, -1
}

func (h *held) closed() bool { return h.mnt < 0 && h.user < 0 && h.root < 0 }
