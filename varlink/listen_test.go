package varlink

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A path that another server took over after we bound it stays when we close.
func TestListenerCloseKeepsForeignSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("closing our listener removed the other server's socket: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the other server is unreachable: %v", err)
	}
	c.Close()
}

// Our own socket goes when we close.
func TestListenerCloseRemovesOwnSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// A live server's socket is not replaced; a dead one's is.
func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	live, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	live.SetUnlinkOnClose(false)
	if _, err := Listen(path, 0o666); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("Listen on a live socket: %v, want ErrSocketInUse", err)
	}
	live.Close() // now a stale file
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	l.Close()
}

// A live server whose backlog is full (connect says EAGAIN) is live too.
func TestListenRefusesBusySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	full := false
	for i := 0; i < 8 && !full; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			full = errors.Is(err, syscall.EAGAIN)
			break
		}
		defer c.Close()
	}
	if !full {
		t.Skip("could not fill the backlog")
	}
	if _, err := Listen(path, 0o666); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("Listen on a live socket with a full backlog: %v, want ErrSocketInUse", err)
	}
}
