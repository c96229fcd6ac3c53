package copystreams

import (
	"context"
	"runtime"
	"sync"
)

// MinSize is the smallest file worth a background stream: below it the
// hand-off (a dup and a goroutine) costs more than the copy.
const MinSize = 512 << 10

// maxStreams bounds the background streams of one copy: each holds two fds
// and keeps a CPU busy.
const maxStreams = 2

// Count is how many background streams a copy runs beside its walk: one per
// CPU up to maxStreams, none on one CPU, where a stream would only take turns
// with the walk.
func Count() int {
	if n := runtime.NumCPU(); n >= 2 {
		return min(n, maxStreams)
	}
	return 0
}

// Set runs the background streams of one tree copy. With no slots it runs
// nothing: Take always says no and the walk copies every file itself.
type Set struct {
	slots  chan struct{} // one token per stream running
	wg     sync.WaitGroup
	cancel context.CancelFunc // stops the walk when a stream fails
	mu     sync.Mutex
	err    error // the first failure of a stream
}

// New returns a set of n streams; cancel is called when one of them fails.
func New(n int, cancel context.CancelFunc) *Set {
	s := &Set{cancel: cancel}
	if n > 0 {
		s.slots = make(chan struct{}, n)
	}
	return s
}

// Take reserves a stream if one is free; Run or Release hands it back.
func (s *Set) Take() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false // none free (or none at all): the walk copies it itself
	}
}

// Release hands back a stream Take reserved and Run was not given.
func (s *Set) Release() { <-s.slots }

// Run runs f on the stream Take reserved; f's error fails the copy.
func (s *Set) Run(f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.Release()
		if err := f(); err != nil {
			s.fail(err)
		}
	}()
}

func (s *Set) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

// Settle waits for every stream started so far and returns the first
// failure, if any.
func (s *Set) Settle() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
