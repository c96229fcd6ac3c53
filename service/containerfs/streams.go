package containerfs

import (
	"context"
	"runtime"
	"sync"
)

// A large file's content is moved while the walk goes on: moving bytes
// between page caches takes a CPU of its own for as long as it lasts, and a
// tree of large files copies in about half the time when a second CPU moves
// some of them. The walk keeps everything that names a path (opens, creates,
// links, renames) and everything that orders the copy (a directory's times
// after its children, a temporary name renamed only once all below it is
// written); a background stream gets two fds of its own and does only the
// content, the owner, mode and times of that one file, and the closing.

// backgroundMin is the smallest file handed to a background stream: below it
// the hand-off (a dup and a goroutine) costs more than the copy.
const backgroundMin = 512 << 10

// maxStreams bounds the background streams of one copy: each holds two fds
// and keeps a CPU busy.
const maxStreams = 2

// BackgroundStreams is how many background streams CopyAlone runs beside its
// walk: one per CPU up to maxStreams, none on one CPU, where a stream would
// only take turns with the walk. The copy helper sizes its scheduler by it.
func BackgroundStreams() int {
	if n := runtime.NumCPU(); n >= 2 {
		return min(n, maxStreams)
	}
	return 0
}

// streams runs the background copies of one tree copy. With no slots it
// copies nothing in the background.
type streams struct {
	slots  chan struct{} // one token per stream running
	wg     sync.WaitGroup
	cancel context.CancelFunc // stops the walk when a stream fails
	mu     sync.Mutex
	err    error // the first failure of a stream
}

func newStreams(n int, cancel context.CancelFunc) *streams {
	s := &streams{cancel: cancel}
	if n > 0 {
		s.slots = make(chan struct{}, n)
	}
	return s
}

// take reserves a stream if one is free; run or release hands it back.
func (s *streams) take() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false // none free (or none at all): the walk copies it itself
	}
}

func (s *streams) release() { <-s.slots }

// run runs f on the stream take reserved; f's error fails the copy.
func (s *streams) run(f func() error) {
	s.wg.Add(1)
	if streamStarted != nil {
		streamStarted()
	}
	go func() {
		defer s.wg.Done()
		defer s.release()
		if err := f(); err != nil {
			s.fail(err)
		}
	}()
}

func (s *streams) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

// settle waits for every stream started so far and returns the first
// failure, if any.
func (s *streams) settle() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// streamStarted, when set (by tests), is called by the walk for each file
// handed to a background stream.
var streamStarted func()
