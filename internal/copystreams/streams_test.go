package copystreams

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// A set never runs more streams than it was given, and a stream handed back
// (by Release, or by the end of its Run) can be taken again.
func TestTakeIsBounded(t *testing.T) {
	s := New(2, func() {})
	if !s.Take() || !s.Take() {
		t.Fatal("a set of two refused one of its first two streams")
	}
	if s.Take() {
		t.Fatal("a set of two gave out a third stream")
	}
	s.Release()
	if !s.Take() {
		t.Fatal("a released stream could not be taken again")
	}
	release := make(chan struct{})
	s.Run(func() error { <-release; return nil })
	s.Run(func() error { <-release; return nil })
	if s.Take() {
		t.Fatal("a stream was free while two ran")
	}
	close(release)
	if err := s.Settle(); err != nil {
		t.Fatal(err)
	}
	if !s.Take() || !s.Take() {
		t.Fatal("streams that ended were not handed back")
	}
}

// A set of none copies nothing in the background: the walk does every file.
func TestNoStreams(t *testing.T) {
	if New(0, func() {}).Take() {
		t.Fatal("a set of no streams gave one out")
	}
}

// The first failure of a stream is what Settle reports, and it stops the walk
// at once (cancel), not when the walk next settles.
func TestFailureCancelsAndIsKept(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(2, cancel)
	first, second := errors.New("first"), errors.New("second")
	var ran atomic.Int32
	s.Take()
	s.Run(func() error { ran.Add(1); return first })
	<-ctx.Done()
	s.Take()
	s.Run(func() error { ran.Add(1); return second })
	if err := s.Settle(); !errors.Is(err, first) {
		t.Fatalf("Settle: %v, want the first failure", err)
	}
	if ran.Load() != 2 {
		t.Fatalf("%d streams ran, want 2", ran.Load())
	}
}
