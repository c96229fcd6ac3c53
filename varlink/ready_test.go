package varlink

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
)

// Messages wait for ready; a connection that ends first stops waiting and
// its fds are closed.
func TestAfterReady(t *testing.T) {
	ready := make(chan struct{})
	var calls atomic.Int32
	h := AfterReady(ready, func(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
		calls.Add(1)
		return nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	f, _ := os.Open("/dev/null")
	errc := make(chan error, 1)
	go func() { errc <- h(ctx, nil, []byte("x"), []*os.File{f}) }()
	cancel()
	if err := <-errc; err == nil || calls.Load() != 0 {
		t.Errorf("a cancelled wait ran the handler: %v, %d calls", err, calls.Load())
	}
	if _, err := f.Stat(); err == nil {
		t.Error("the fds of a message never handled were left open")
	}

	done := make(chan error, 1)
	go func() { done <- h(context.Background(), nil, []byte("y"), nil) }()
	close(ready)
	if err := <-done; err != nil || calls.Load() != 1 {
		t.Errorf("after ready: %v, %d calls", err, calls.Load())
	}
}
