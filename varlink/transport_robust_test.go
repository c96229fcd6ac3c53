package varlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A peer that trickles a message byte by byte must not keep its slot by never
// going quiet for a whole IdleTimeout.
func TestTricklingPeerIsClosed(t *testing.T) {
	lim := DefaultLimits()
	lim.IdleTimeout = 200 * time.Millisecond
	path, _ := serveOn(t, lim, echo)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 1000 bytes, 20 ms apart: 100 times the limit if the server let it run.
	for i := 0; i < 1000; i++ {
		if _, err := c.Write([]byte("x")); err != nil {
			return // closed by the server, as it should be
		}
		time.Sleep(20 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 64)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
	t.Error("a peer trickling one byte every 20 ms kept its connection for 20 s with a 200 ms limit")
}

// Pipelined messages with fds in the middle: each message gets exactly the fds
// sent with it, also across buffer compaction.
func TestPipelinedMessagesKeepTheirFDs(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{})
	f, _ := os.Open("/dev/null")
	defer f.Close()
	nullFD := int(f.Fd())
	const n = 3000
	written := make(chan struct{})
	defer func() { <-written }() // before f closes
	go func() {
		defer close(written)
		for i := 0; i < n; i++ {
			msg := []byte(fmt.Sprintf("message-%04d\x00", i))
			if i%500 == 250 {
				a.WriteMsgUnix(msg, unix.UnixRights(nullFD), nil)
			} else {
				a.Write(msg)
			}
		}
	}()
	for i := 0; i < n; i++ {
		msg, fds, err := c.ReadMessage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("message-%04d", i); string(msg) != want {
			t.Fatalf("got %q, want %q", msg, want)
		}
		if wantFDs := map[bool]int{true: 1, false: 0}[i%500 == 250]; len(fds) != wantFDs {
			t.Fatalf("%s came with %d fds, want %d", msg, len(fds), wantFDs)
		}
		closeFiles(fds)
	}
}

// More fds than the control buffer can hold: the kernel truncates and closes
// the rest; we refuse the connection instead of running on with a partial set.
func TestTruncatedFDsAreRefused(t *testing.T) {
	a, b := socketpair(t)
	c := newConn(b, DefaultLimits(), Peer{})
	f, _ := os.Open("/dev/null")
	defer f.Close()
	raw := make([]int, 200)
	for i := range raw {
		raw[i] = int(f.Fd())
	}
	before := openFDs(t)
	if _, _, err := a.WriteMsgUnix([]byte("x\x00"), unix.UnixRights(raw...), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, ErrTooManyFDs) {
		t.Errorf("got %v, want ErrTooManyFDs", err)
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d fds leaked", after-before)
	}
}

// fds that arrive over several reads still count against the per-message cap.
func TestFDsPerMessageAcrossReads(t *testing.T) {
	a, b := socketpair(t)
	lim := DefaultLimits()
	lim.MaxFDsPerMessage, lim.MaxPendingFDs = 2, 8
	c := newConn(b, lim, Peer{})
	f, _ := os.Open("/dev/null")
	defer f.Close()
	for _, part := range []string{"a", "b", "c\x00"} {
		a.WriteMsgUnix([]byte(part), unix.UnixRights(int(f.Fd()), int(f.Fd())), nil)
	}
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, ErrTooManyFDs) {
		t.Errorf("6 fds for one message: got %v, want ErrTooManyFDs", err)
	}
}

// A handler that panics must not leak the fds it was handed.
func TestPanickingHandlerClosesFDs(t *testing.T) {
	path, _ := serveOn(t, DefaultLimits(), func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		panic("handler bug")
	})
	before := openFDs(t)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open("/dev/null")
	conn.(*net.UnixConn).WriteMsgUnix([]byte("x\x00"), unix.UnixRights(int(f.Fd()), int(f.Fd()), int(f.Fd())), nil)
	f.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 16)); err == nil {
		t.Error("connection of a panicking handler stayed open")
	}
	conn.Close()
	waitFor(t, func() bool { return openFDs(t) <= before }, "fds back to baseline after a handler panic")
}

// Shutdown also ends connections served through ServeConn (varlinkctl exec:).
func TestShutdownEndsServeConn(t *testing.T) {
	a, b := socketpair(t)
	s := NewServer("test", echo, DefaultLimits(), nil)
	done := make(chan struct{})
	go func() { s.ServeConn(context.Background(), b); close(done) }()
	if r, err := roundTrip(t, a, "hi"); err != nil || !strings.Contains(r, "hi") {
		t.Fatalf("round trip: %q %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-done
}

// A listener that can never accept again ends Serve with an error instead of a
// retry loop that logs forever.
func TestServeReturnsOnPermanentAcceptError(t *testing.T) {
	// A bound socket that never listened: accept4 answers EINVAL, as it would
	// for a wrong fd handed over by socket activation.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: t.TempDir() + "/s"}); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bound")
	defer f.Close()
	fl, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	l := fl.(*net.UnixListener)
	s := NewServer("test", echo, DefaultLimits(), nil)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background(), l) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Serve returned nil for a dead listener")
		}
	case <-time.After(30 * time.Second):
		s.Shutdown(context.Background())
		t.Error("Serve kept retrying a listener that cannot accept")
	}
}

func TestActivationNeedsListenPID(t *testing.T) {
	os.Unsetenv("LISTEN_PID")
	t.Setenv("LISTEN_FDS", "1")
	if got := ActivationFiles(); got != nil {
		t.Errorf("took fds without LISTEN_PID: %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("timed out waiting for %s", what)
}
