package varlink

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An alias is a link to our socket that a client can connect through; it
// replaces a stale link or a dead socket file, never a live socket or a plain
// file, and Close removes it only while it is still ours.
func TestAlias(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "machine", "io.systemd.Machine")
	l, err := Listen(sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	link := filepath.Join(dir, "varlink", "registry", "io.systemd.Machine")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", link); err != nil {
		t.Fatal(err)
	}
	a, err := NewAlias(link, sock)
	if err != nil {
		t.Fatalf("over a stale link: %v", err)
	}
	if got, _ := os.Readlink(link); got != sock {
		t.Errorf("link points at %q, want %q", got, sock)
	}
	go func() {
		if c, err := l.AcceptUnix(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", link)
	if err != nil {
		t.Errorf("connect through the alias: %v", err)
	} else {
		c.Close()
	}

	// Somebody else's link since: left alone.
	os.Remove(link)
	os.Symlink("/elsewhere", link)
	a.Close()
	if got, _ := os.Readlink(link); got != "/elsewhere" {
		t.Errorf("Close removed a link that was not ours (%q)", got)
	}

	// A plain file and a live socket are never replaced; a dead socket is.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if _, err := NewAlias(plain, sock); err == nil || !strings.Contains(err.Error(), "not a socket or a link") {
		t.Errorf("over a plain file: %v", err)
	}
	if _, err := NewAlias(sock, "/x"); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("over a live socket: %v", err)
	}
	dead := filepath.Join(dir, "dead")
	dl, err := Listen(dead, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	dl.SetUnlinkOnClose(false)
	dl.UnixListener.Close()
	ours, err := NewAlias(dead, sock)
	if err != nil {
		t.Fatalf("over a dead socket: %v", err)
	}
	ours.Close()
	if _, err := os.Lstat(dead); !os.IsNotExist(err) {
		t.Errorf("Close left our own link: %v", err)
	}
}
