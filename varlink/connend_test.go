package varlink

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// OnConnEnd's function runs once for every connection that ends, whether the
// accept loop answered it or a connection goroutine served it, and not while a
// connection is still open.
func TestOnConnEnd(t *testing.T) {
	for _, onLoop := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "s")
		l, err := Listen(path, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		s := NewServer("t", echo, DefaultLimits(), nil)
		if onLoop {
			ready := make(chan struct{})
			close(ready)
			s.AnswerOnAcceptLoop(ready)
		}
		var ended atomic.Int32
		s.OnConnEnd(func() { ended.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Serve(ctx, l); close(done) }()

		for range 5 {
			if _, err := oneShot(t, path, `{"method":"a.b.C"}`); err != nil {
				t.Fatal(err)
			}
		}
		kept, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := roundTrip(t, kept, `{"method":"a.b.C"}`); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return ended.Load() == 5 }, "the one-call connections to be counted ended")
		if n := ended.Load(); n != 5 {
			t.Errorf("accept loop %v: %d connections counted ended while one is open, want 5", onLoop, n)
		}
		kept.Close()
		waitFor(t, func() bool { return ended.Load() == 6 }, "the kept connection to be counted ended")
		cancel()
		<-done
		s.Shutdown(context.Background())
		if n := ended.Load(); n != 6 {
			t.Errorf("accept loop %v: %d connections counted ended, want 6", onLoop, n)
		}
	}
}
