package service

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitWatcher notices leader exits for every machine through one epoll set,
// itself parked on the Go netpoller: no goroutine, thread or extra fd per
// machine. A pidfd becomes readable when its process exits; EPOLLONESHOT
// reports that once. Closing a pidfd drops it from the set by itself.
type exitWatcher struct {
	file *os.File // the epoll fd, pollable by the runtime

	// exited runs, from the watcher's goroutine, for each machine whose
	// leader exited: one function for all, where a closure per machine
	// would cost each of ten thousand machines an allocation of its own.
	exited func(mc *machine, tok uint32)

	mu       sync.Mutex
	next     uint32
	machines map[uint32]*machine
	rc       syscall.RawConn
	// The epoll_ctl of a watch, made under mu with arguments and outcome kept
	// here: a closure per call would cost allocations on every registration.
	addFn    func(epfd uintptr)
	addPidfd int
	addTok   uint32
	addErr   error
}

func newExitWatcher(exited func(mc *machine, tok uint32)) (*exitWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	w := &exitWatcher{file: os.NewFile(uintptr(epfd), "leader-exits"), exited: exited, machines: map[uint32]*machine{}}
	if w.rc, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		return nil, err
	}
	w.addFn = w.add
	go w.loop()
	return w, nil
}

// watch calls exited(mc, tok) once, from the watcher's goroutine, when the
// process behind pidfd exits, unless forget(tok) comes first. exited must not
// block for long.
func (w *exitWatcher) watch(pidfd int, mc *machine) (tok uint32, err error) {
	w.mu.Lock()
	if w.next++; w.next == 0 { // 0 means "no watch" to callers
		w.next++
	}
	tok = w.next
	w.machines[tok] = mc
	w.addPidfd, w.addTok, w.addErr = pidfd, tok, nil
	err = w.rc.Control(w.addFn)
	if err == nil {
		err = w.addErr
	}
	w.mu.Unlock()
	if err != nil {
		w.forget(tok)
		return 0, err
	}
	return tok, nil
}

func (w *exitWatcher) add(epfd uintptr) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(w.addTok)}
	w.addErr = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, w.addPidfd, &ev)
}

// forget drops a watch whose machine went before its leader (unregistered,
// terminated): closing the pidfd takes it out of the epoll set, but the
// machine would otherwise stay referenced until the leader exits, which for a
// leader registered again and again is never.
func (w *exitWatcher) forget(tok uint32) {
	w.mu.Lock()
	delete(w.machines, tok)
	w.mu.Unlock()
}

// watching is how many watches are pending.
func (w *exitWatcher) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.machines)
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
			mc := w.machines[tok]
			delete(w.machines, tok)
			w.mu.Unlock()
			if mc != nil {
				w.exited(mc, tok)
			}
		}
	}
}

func (w *exitWatcher) close() { w.file.Close() }
