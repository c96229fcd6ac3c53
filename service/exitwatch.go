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
	exited func(mc *machine, tok exitToken)

	mu sync.Mutex
	// A watch is a slot holding its machine, found by index: a hash map from
	// token to machine cost each of ten thousand machines twice the slot.
	// A slot is reused once its watch is forgotten; its generation, carried
	// in the epoll event beside the index, tells a stale event of the slot's
	// previous watch from one of its current.
	slots   []exitSlot
	free    []uint32 // indexes of unused slots
	pending int      // slots in use
	gen     uint32   // the last generation given out
	rc      syscall.RawConn
	// The epoll_ctl of a watch, made under mu with arguments and outcome kept
	// here: a closure per call would cost allocations on every registration.
	addFn    func(epfd uintptr)
	addPidfd int
	addEvent unix.EpollEvent
	addErr   error
}

type exitSlot struct {
	mc  *machine // nil: unused
	gen uint32
}

// exitToken names one watch: its slot and the generation the slot had when
// the watch began, so that a late forget or a stale event of an earlier watch
// cannot touch a later watch in the same slot. 0 is no watch.
type exitToken uint64

func makeExitToken(slot, gen uint32) exitToken { return exitToken(gen)<<32 | exitToken(slot) }

func (t exitToken) slot() uint32 { return uint32(t) }
func (t exitToken) gen() uint32  { return uint32(t >> 32) }

func newExitWatcher(exited func(mc *machine, tok exitToken)) (*exitWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	w := &exitWatcher{file: os.NewFile(uintptr(epfd), "leader-exits"), exited: exited}
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
// block for long. The token is never 0.
func (w *exitWatcher) watch(pidfd int, mc *machine) (tok exitToken, err error) {
	w.mu.Lock()
	var i uint32
	if n := len(w.free); n > 0 {
		i, w.free = w.free[n-1], w.free[:n-1]
	} else {
		i = uint32(len(w.slots))
		w.slots = append(w.slots, exitSlot{})
	}
	if w.gen++; w.gen == 0 { // 0 would make a token of slot 0 look like none
		w.gen++
	}
	w.slots[i] = exitSlot{mc: mc, gen: w.gen}
	w.pending++
	w.addPidfd, w.addErr = pidfd, nil
	w.addEvent = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(i), Pad: int32(w.gen)}
	err = w.rc.Control(w.addFn)
	if err == nil {
		err = w.addErr
	}
	if err != nil {
		w.releaseLocked(i)
		w.mu.Unlock()
		return 0, err
	}
	w.mu.Unlock()
	return makeExitToken(i, w.gen), nil
}

func (w *exitWatcher) add(epfd uintptr) {
	w.addErr = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, w.addPidfd, &w.addEvent)
}

// releaseLocked frees slot i. Once no watch is left, more than a few slots
// start over, so a burst of machines does not keep its peak number of slots.
// w.mu must be held.
func (w *exitWatcher) releaseLocked(i uint32) {
	w.slots[i] = exitSlot{}
	w.pending--
	if w.pending == 0 && cap(w.slots) > 64 {
		w.slots, w.free = nil, nil
		return
	}
	w.free = append(w.free, i)
}

// forget drops a watch whose machine went before its leader (unregistered,
// terminated): closing the pidfd takes it out of the epoll set, but the
// machine would otherwise stay referenced until the leader exits, which for a
// leader registered again and again is never.
func (w *exitWatcher) forget(tok exitToken) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := tok.slot(); w.holdsLocked(i, tok.gen()) {
		w.releaseLocked(i)
	}
}

// holdsLocked reports whether slot i holds the watch of generation gen. w.mu
// must be held.
func (w *exitWatcher) holdsLocked(i, gen uint32) bool {
	return int(i) < len(w.slots) && w.slots[i].mc != nil && w.slots[i].gen == gen
}

// watching is how many watches are pending.
func (w *exitWatcher) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

// fired takes the watch an event reports, unless that watch was forgotten
// (and its slot perhaps reused) since the event was queued.
func (w *exitWatcher) fired(ev unix.EpollEvent) (*machine, exitToken) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, gen := uint32(ev.Fd), uint32(ev.Pad)
	if !w.holdsLocked(i, gen) {
		return nil, 0
	}
	mc := w.slots[i].mc
	w.releaseLocked(i)
	return mc, makeExitToken(i, gen)
}

func (w *exitWatcher) loop() {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, 128)
	var ready []unix.EpollEvent
	for {
		ready = ready[:0]
		err := rc.Read(func(epfd uintptr) bool {
			n, err := unix.EpollWait(int(epfd), events, 0)
			if err != nil || n <= 0 {
				return false // nothing yet: park on the netpoller
			}
			for _, ev := range events[:n] {
				ready = append(ready, ev)
			}
			return true
		})
		if err != nil {
			return // closed
		}
		for _, ev := range ready {
			if mc, tok := w.fired(ev); mc != nil {
				w.exited(mc, tok)
			}
		}
	}
}

func (w *exitWatcher) close() { w.file.Close() }
