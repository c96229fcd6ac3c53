package proc

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onDisposableThread runs f on an OS thread of its own that is destroyed once f
// returns, for work that changes the calling thread's own state (its network
// namespace, its credentials), which must never carry over to another goroutine.
// The goroutine locks the thread and exits still locked, so the runtime kills
// the thread instead of reusing it. Threads the runtime starts meanwhile come
// from its template thread, not from the locked one, so they do not inherit the
// change. The main thread is never used, since it cannot be destroyed: f then
// runs on a new goroutine, which cannot be scheduled on the main thread while
// this one holds it.
func onDisposableThread[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			ch <- f()
			return // exits locked: the runtime destroys the thread
		}
		done := make(chan T, 1)
		go func() {
			runtime.LockOSThread()
			done <- f()
		}()
		ch <- <-done
		runtime.UnlockOSThread()
	}()
	return ch
}
