package varlink

import (
	"errors"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Label sets user.varlink on the socket where the kernel takes user xattrs on
// sockets, and reports the kernel's refusal (EPERM) where it does not: the
// probe is a socket of the test's own, so either way the outcome is checked.
func TestLabel(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	pl, err := net.ListenUnix("unix", &net.UnixAddr{Name: probe, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	kernelTakes := unix.Setxattr(probe, "user.probe", []byte("1"), 0) == nil

	path := filepath.Join(dir, "s")
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.Label()
	if !kernelTakes {
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("Label on a kernel without socket xattrs: %v, want EPERM", err)
		}
		t.Log("this kernel refuses user xattrs on sockets; the label is left out")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.varlink", buf)
	if err != nil || string(buf[:n]) != "entrypoint" {
		t.Errorf("user.varlink on the path = %q %v, want entrypoint", buf[:n], err)
	}
}
