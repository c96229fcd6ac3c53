package varlink

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
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
