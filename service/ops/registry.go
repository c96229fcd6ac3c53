package ops

import (
	"context"
	"errors"
	"sync"
)

// Max is upstream's cap on concurrently running operations; clients see the
// 65th as TooManyOperations (Varlink) or LimitsExceeded (D-Bus).
const Max = 64

// ErrTooMany is returned by Run when Max operations are already running.
var ErrTooMany = errors.New("too many operations running")

// ErrShutdown is returned by Run once Shutdown has begun.
var ErrShutdown = errors.New("daemon is shutting down")

// Registry is the set of running operations. The zero value is not usable; use
// NewRegistry.
type Registry struct {
	max int

	mu      sync.Mutex
	running map[*operation]struct{}
	closed  bool
	wg      sync.WaitGroup
}

type operation struct {
	owner  any // what the operation works on (a machine, an image); nil for none
	cancel context.CancelCauseFunc
}

// NewRegistry returns a registry admitting at most max operations at once
// (Max when max <= 0).
func NewRegistry(max int) *Registry {
	if max <= 0 {
		max = Max
	}
	return &Registry{max: max, running: map[*operation]struct{}{}}
}

// Run runs fn as an operation and returns its error. fn's context ends when ctx
// ends (the caller went away), when Cancel(owner) is called, or on Shutdown;
// context.Cause tells which. fn must return promptly once its context is done
// and leave nothing behind: no half-written file under its final name, no child
// process, no fd. Without a free slot Run returns ErrTooMany and fn never runs.
func (r *Registry) Run(ctx context.Context, owner any, fn func(ctx context.Context) error) error {
	opCtx, cancel := context.WithCancelCause(ctx)
	op := &operation{owner: owner, cancel: cancel}
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		cancel(ErrShutdown)
		return ErrShutdown
	case len(r.running) >= r.max:
		r.mu.Unlock()
		cancel(ErrTooMany)
		return ErrTooMany
	}
	r.running[op] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()

	defer func() {
		r.mu.Lock()
		delete(r.running, op)
		r.mu.Unlock()
		cancel(nil)
		r.wg.Done()
	}()
	return fn(opCtx)
}

// Cancel ends every running operation whose owner is owner, with cause.
func (r *Registry) Cancel(owner any, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for op := range r.running {
		if op.owner == owner {
			op.cancel(cause)
		}
	}
}

// Running is the number of operations running now.
func (r *Registry) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Shutdown refuses new operations, ends the running ones and waits until every
// one has returned or ctx ends.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for op := range r.running {
		op.cancel(ErrShutdown)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
