package service

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// exitWatcher notices leader exits for every machine through one epoll set,
// itself parked on the Go netpoller: no goroutine, thread or extra fd per
// machine. A pidfd becomes readable when its process exits; EPOLLONESHOT
// reports that once. Closing a pidfd drops it from the set by itself.
type exitWatcher struct {
	file *os.File // the epoll fd, pollable by the runtime

	mu   sync.Mutex
	next uint32
	cbs  map[uint32]func()
}

func newExitWatcher() (*exitWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	w := &exitWatcher{file: os.NewFile(uintptr(epfd), "leader-exits"), cbs: map[uint32]func(){}}
	go w.loop()
	return w, nil
}

// watch calls cb once, from the watcher's goroutine, when the process behind
// pidfd exits, unless forget(tok) comes first. cb must not block for long.
func (w *exitWatcher) watch(pidfd int, cb func()) (tok uint32, err error) {
	w.mu.Lock()
	if w.next++; w.next == 0 { // 0 means "no watch" to callers
		w.next++
	}
	tok = w.next
	w.cbs[tok] = cb
	w.mu.Unlock()
	rc, err := w.file.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(epfd uintptr) {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(tok)}
			err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, pidfd, &ev)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.forget(tok)
		return 0, err
	}
	return tok, nil
}

// forget drops the callback of a watch whose machine went before its leader
// (unregistered, terminated): closing the pidfd takes it out of the epoll set,
// but the callback, and the machine it holds, would otherwise stay until the
// leader exits, which for a leader registered again and again is never.
func (w *exitWatcher) forget(tok uint32) {
	w.mu.Lock()
	delete(w.cbs, tok)
	w.mu.Unlock()
}

// watching is how many callbacks are pending.
func (w *exitWatcher) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.cbs)
}

func (w *exitWatcher) loop() {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, 128)
	var ready []uint32
	for {
		ready = ready[:0]
		err := rc.Read(func(epfd uintptr) bool {
			n, err := unix.EpollWait(int(epfd), events, 0)
			if err != nil || n <= 0 {
				return false // nothing yet: park on the netpoller
			}
			for _, ev := range events[:n] {
				ready = append(ready, uint32(ev.Fd))
			}
			return true
		})
		if err != nil {
			return // closed
		}
		for _, tok := range ready {
			w.mu.Lock()
			cb := w.cbs[tok]
			delete(w.cbs, tok)
			w.mu.Unlock()
			if cb != nil {
				cb()
			}
		}
	}
}

func (w *exitWatcher) close() { w.file.Close() }
