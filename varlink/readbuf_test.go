package varlink

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// A connection holds a read buffer only while a message is in flight: one
// that waits for its next message, or has ended, holds none. Clients that
// connect once per lookup (glibc's nss-systemd) otherwise cost a fresh 16 KiB
// buffer each, most of what the daemon allocated on that path.
func TestConnHoldsNoBufferBetweenMessages(t *testing.T) {
	a, b := socketpair(t)
	lim := DefaultLimits()
	lim.IdleTimeout = 20 * time.Millisecond // ends the wait below; nothing is timed
	c := newConn(b, lim, Peer{})

	if _, err := a.Write([]byte("one\x00")); err != nil {
		t.Fatal(err)
	}
	if msg, _, err := c.ReadMessage(context.Background()); err != nil || string(msg) != "one" {
		t.Fatalf("got %q %v", msg, err)
	}
	// Nothing comes: the reader parks, then gives up at the idle timeout.
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle read: %v, want a deadline error", err)
	}
	if c.buf != nil {
		t.Errorf("an idle connection holds a %d-byte read buffer", cap(c.buf))
	}

	c.uc.SetReadDeadline(time.Time{})
	c.lim.IdleTimeout = 0
	if _, err := a.Write([]byte("two\x00")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if msg, _, err := c.ReadMessage(context.Background()); err != nil || string(msg) != "two" {
		t.Fatalf("got %q %v", msg, err)
	}
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
	if c.buf != nil {
		t.Errorf("an ended connection holds a %d-byte read buffer", cap(c.buf))
	}
}
