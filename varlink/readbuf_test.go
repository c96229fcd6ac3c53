package varlink

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// Reading a message and writing its reply on a connection that is already
// open allocates nothing: the read and write callbacks and the pooled
// buffer's holder live with the connection.
func TestConnRoundTripAllocations(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{})
	ar, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var afd int
	ar.Control(func(fd uintptr) { afd = int(fd) })
	req, reply := []byte("{\"method\":\"x\"}\x00"), []byte("{\"parameters\":{}}\x00")
	in := make([]byte, 64)
	ctx := context.Background()
	round := func() {
		if _, err := unix.Write(afd, req); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(ctx, reply); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(reply); {
			n, err := unix.Read(afd, in)
			if err == unix.EAGAIN {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	round() // the connection's one-time state: oob buffer, callbacks
	if allocs := testing.AllocsPerRun(100, round); allocs > 0 {
		t.Errorf("%.1f allocations per message and reply", allocs)
	}
}
