package leasetest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An open of a leased file waits, shows as a waiter, and completes once the
// lease is released.
func TestHoldWaitersRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := Hold(t, path)
	if n := l.Waiters(t); n != 0 {
		t.Fatalf("%d waiters before any open", n)
	}
	opened := make(chan error, 1)
	go func() {
		f, err := os.Open(path)
		if err == nil {
			f.Close()
		}
		opened <- err
	}()
	for l.Waiters(t) == 0 {
		select {
		case err := <-opened:
			t.Fatalf("the open went through the lease: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	l.Release()
	l.Release()
	if err := <-opened; err != nil {
		t.Fatalf("open after the release: %v", err)
	}
}
