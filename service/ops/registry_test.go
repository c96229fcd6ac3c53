package ops

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// blockers starts n operations that wait for their context and report its cause.
func blockers(t *testing.T, r *Registry, ctx context.Context, owner any, n int) (started *sync.WaitGroup, causes chan error) {
	t.Helper()
	started = &sync.WaitGroup{}
	causes = make(chan error, n)
	for range n {
		started.Add(1)
		go func() {
			err := r.Run(ctx, owner, func(ctx context.Context) error {
				started.Done()
				<-ctx.Done()
				return context.Cause(ctx)
			})
			causes <- err
		}()
	}
	started.Wait()
	return started, causes
}

func TestRunRefusesTheOneOverTheCap(t *testing.T) {
	r := NewRegistry(0)
	ctx, cancel := context.WithCancel(context.Background())
	_, causes := blockers(t, r, ctx, nil, Max)
	if got := r.Running(); got != Max {
		t.Fatalf("Running() = %d, want %d", got, Max)
	}
	called := false
	err := r.Run(context.Background(), nil, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, ErrTooMany) || called {
		t.Fatalf("operation %d: err %v, fn called %v; want ErrTooMany and no call", Max+1, err, called)
	}
	cancel()
	for range Max {
		if err := <-causes; !errors.Is(err, context.Canceled) {
			t.Fatalf("cause after the caller went away: %v", err)
		}
	}
	if err := r.Run(context.Background(), nil, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("a slot freed by finished operations is not reused: %v", err)
	}
}

func TestCancelEndsOnlyTheOwnersOperations(t *testing.T) {
	r := NewRegistry(4)
	a, b := new(int), new(int)
	_, ca := blockers(t, r, context.Background(), a, 2)
	_, cb := blockers(t, r, context.Background(), b, 1)
	gone := errors.New("machine gone")
	r.Cancel(a, gone)
	for range 2 {
		if err := <-ca; !errors.Is(err, gone) {
			t.Fatalf("owner a's operation ended with %v, want its cancel cause", err)
		}
	}
	select {
	case err := <-cb:
		t.Fatalf("owner b's operation ended too: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := r.Running(); got != 1 {
		t.Fatalf("Running() = %d, want 1", got)
	}
	r.Cancel(b, gone)
	<-cb
}

func TestShutdownEndsEverythingAndRefusesNewWork(t *testing.T) {
	r := NewRegistry(4)
	_, causes := blockers(t, r, context.Background(), nil, 3)
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-causes; !errors.Is(err, ErrShutdown) {
			t.Fatalf("running operation ended with %v, want ErrShutdown", err)
		}
	}
	if err := r.Run(context.Background(), nil, func(context.Context) error { return nil }); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Run after Shutdown: %v", err)
	}
}

func TestShutdownGivesUpWhenAnOperationIgnoresItsContext(t *testing.T) {
	r := NewRegistry(1)
	release := make(chan struct{})
	started := make(chan struct{})
	go r.Run(context.Background(), nil, func(context.Context) error { close(started); <-release; return nil })
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck operation: %v", err)
	}
	close(release)
}
