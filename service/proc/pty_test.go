package proc

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Whatever a container puts at /dev/ptmx, only the multiplexer is opened: a
// FIFO neither blocks nor passes, a file or a device of another kind is
// refused, and a symlink cannot leave the tree.
func TestOpenPTMXInRefusesImpostors(t *testing.T) {
	for name, plant := range map[string]func(path string) error{
		"fifo": func(p string) error { return unix.Mkfifo(p, 0o666) },
		"file": func(p string) error { return os.WriteFile(p, nil, 0o666) },
		// The host's multiplexer, outside the tree: not found inside it.
		"escape":  func(p string) error { return os.Symlink("../../../../../../dev/pts/ptmx", p) },
		"absolut": func(p string) error { return os.Symlink("/dev/pts/ptmx", p) },
		"loop":    func(p string) error { return os.Symlink("/dev/ptmx", p) },
		"null": func(p string) error {
			if os.Geteuid() != 0 {
				t.Skip("mknod needs root")
			}
			return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			os.Mkdir(filepath.Join(root, "dev"), 0o755)
			if err := plant(filepath.Join(root, "dev/ptmx")); err != nil {
				t.Fatal(err)
			}
			rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rootfd)
			fd, err := openPTMXIn(rootfd)
			if err == nil {
				unix.Close(fd)
				t.Fatalf("%s at dev/ptmx was opened", name)
			}
			if !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ELOOP) {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
}

// The host's multiplexer gives a terminal whose number is its path's, and
// whose peer is that terminal.
func TestHostPTYAndPeer(t *testing.T) {
	pty, err := OpenHostPTY()
	if err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	defer pty.Master.Close()
	peer, err := pty.Peer()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(peer.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(pty.Path, &b); err != nil {
		t.Fatal(err)
	}
	if a.Rdev != b.Rdev {
		t.Errorf("peer %d:%d is not %s", unix.Major(a.Rdev), unix.Minor(a.Rdev), pty.Path)
	}
	if fl, _ := unix.FcntlInt(pty.Master.Fd(), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
		t.Error("master is non-blocking")
	}
}
