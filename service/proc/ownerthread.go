package proc

import (
	"fmt"
	"sync"
)

// OwnerThread runs many small file system calls as one identity: a tree copy
// opens, creates and renames thousands of entries inside a machine, and a
// disposable thread per call (AsOwner) would cost a thread each. The calls run
// one at a time on a single disposable thread that became owner once; the
// thread is destroyed by Close. For root and our own uid there is no thread:
// Do runs f where it is called, as AsOwner would.
type OwnerThread struct {
	owner Owner
	work  chan func()
	once  sync.Once
}

// StartOwnerThread starts the thread and switches it to owner (becomeOwner).
// Failing to give up anything fails the start: no call ever runs with more.
func StartOwnerThread(owner Owner) (*OwnerThread, error) {
	if owner.UID == 0 || owner.UID == ownEUID {
		return &OwnerThread{owner: owner}, nil
	}
	t := &OwnerThread{owner: owner, work: make(chan func())}
	started := make(chan error, 1)
	onDisposableThread(func() struct{} {
		if err := becomeOwner(owner); err != nil {
			started <- err
			return struct{}{}
		}
		started <- nil
		for f := range t.work {
			f()
		}
		return struct{}{}
	})
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// Owner is the identity the thread's calls run as: what a helper process
// doing the same work must become.
func (t *OwnerThread) Owner() Owner { return t.owner }

// Do runs f on the thread and returns its error. It must not be called after
// Close.
func (t *OwnerThread) Do(f func() error) error {
	if t.work == nil {
		return f()
	}
	done := make(chan error, 1)
	t.work <- func() {
		// A panic in f must not take the thread's loop with it: the next
		// Do would wait for it forever.
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic on the owner's thread: %v", r)
			}
		}()
		done <- f()
	}
	return <-done
}

// Close ends the thread; it is idempotent.
func (t *OwnerThread) Close() {
	if t.work == nil {
		return
	}
	t.once.Do(func() { close(t.work) })
}
