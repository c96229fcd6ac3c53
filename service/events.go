package service

import (
	"errors"
	"fmt"
	"sync"
)

// EventKind says what happened to a machine.
type EventKind int

const (
	MachineNew          EventKind = iota // registered, or restored at start-up
	MachineRemoved                       // finalized: see Event.Reason
	MachineStateChanged                  // its State changed (running -> closing)
)

// Reason says why a machine came or went. The start-up outcomes happen before any
// socket serves a call: a restored machine reaches front ends' subscribers only
// when they watched before Restore (the D-Bus shim), and a record dropped at
// start-up was never in the registry, so nothing is announced for it.
type Reason string

const (
	ReasonNone         Reason = ""
	ReasonRestored     Reason = "restored"     // MachineNew of a machine loaded from its state file
	ReasonUnregistered Reason = "unregistered" // MachineRemoved by Unregister
	ReasonTerminated   Reason = "terminated"   // MachineRemoved: its leader exited after Terminate
	ReasonLeaderExited Reason = "leaderExited" // MachineRemoved: its leader exited on its own
)

// Watches an unprivileged uid may hold at once, and all unprivileged uids
// together. Each costs a queue append under the registry lock for every event,
// and up to EventBacklog queued pointers while it lags: without a bound, one user
// with many connections could slow every registration and hold the memory.
const (
	MaxWatchesPerUID       = 16
	MaxUnprivilegedWatches = 256
)

// watchKeep is the most events a watch's two queue arrays keep room for
// between bursts. A watcher that lagged far behind once would otherwise keep
// arrays of its largest backlog for as long as it watches; one that keeps up
// reuses its arrays and allocates nothing.
const watchKeep = 256

// EventBacklog is how many undelivered events the core holds for one watcher
// before it drops it. It holds them only while the watcher lags: memory follows
// the lag, not the limit.
const EventBacklog = 4096

// Event is one change of the registry, delivered in the order it happened.
// Machine is the record as it was at that moment; it is shared by every watcher
// and must not be modified.
type Event struct {
	Kind    EventKind
	Name    string
	Reason  Reason
	Machine *MachineInfo
}

// Watch is one subscription to the registry's events. Emitting never waits for
// the watcher: events queue up to its backlog, and one more drops it. A Watch may
// be read by one goroutine.
type Watch struct {
	m       *Manager
	limit   int
	owner   *uint32       // the unprivileged uid it is counted for; nil when not counted
	ready   chan struct{} // holds a token while there is something to Take
	mu      sync.Mutex
	queue   []*Event // shared with the other watchers: a lagging one costs a pointer per event
	end     error    // ErrBacklogExceeded or errWatchEnded, once the watch is over
	spare   []*Event
	cancels sync.Once
}

// errWatchEnded ends a watch that was cancelled or whose Manager closed.
var errWatchEnded = errors.New("watch ended")

// Watch returns the machines registered now and a subscription to every change
// after them: the snapshot is taken and the watcher registered under the registry
// lock, so no change falls between the two or is seen in both. limit bounds the
// backlog (EventBacklog when <= 0). It is the daemon's own watch (the D-Bus
// signals); a client's is WatchAs.
func (m *Manager) Watch(limit int) ([]MachineInfo, *Watch) {
	snap, w, _ := m.watch(nil, limit)
	return snap, w
}

// WatchAs is Watch for a client: an unprivileged caller may hold at most
// MaxWatchesPerUID watches, and all of them together MaxUnprivilegedWatches;
// past that, ErrTooManyWatches.
func (m *Manager) WatchAs(c Caller, limit int) ([]MachineInfo, *Watch, error) {
	if c.privileged() {
		return m.watch(nil, limit)
	}
	uid := c.UID
	return m.watch(&uid, limit)
}

func (m *Manager) watch(owner *uint32, limit int) ([]MachineInfo, *Watch, error) {
	if limit <= 0 {
		limit = EventBacklog
	}
	w := &Watch{m: m, limit: limit, ready: make(chan struct{}, 1)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		w.endLocked(errWatchEnded)
		return nil, w, nil
	}
	if owner != nil {
		if m.watchesOf[*owner] >= MaxWatchesPerUID || m.unprivWatches >= MaxUnprivilegedWatches {
			return nil, nil, fmt.Errorf("user %d may not watch the registry more than %d times, and all users %d: %w", *owner, MaxWatchesPerUID, MaxUnprivilegedWatches, ErrTooManyWatches)
		}
		m.watchesOf[*owner]++
		m.unprivWatches++
		w.owner = owner
	}
	sorted := m.sortedLocked()
	snap := make([]MachineInfo, 0, len(sorted))
	for _, mc := range sorted {
		snap = append(snap, mc.snapshot())
	}
	m.subs[w] = struct{}{}
	return snap, w, nil
}

// unwatchLocked forgets w and gives back its place in its owner's count. m.mu
// must be held.
func (m *Manager) unwatchLocked(w *Watch) {
	if _, ok := m.subs[w]; !ok {
		return
	}
	delete(m.subs, w)
	if w.owner != nil {
		if m.watchesOf[*w.owner]--; m.watchesOf[*w.owner] <= 0 {
			delete(m.watchesOf, *w.owner)
		}
		m.unprivWatches--
	}
}

// Ready has a value when Take has events or the end to return.
func (w *Watch) Ready() <-chan struct{} { return w.ready }

// Take returns the events queued since the last Take, in order, and, once the
// watch is over, why: ErrBacklogExceeded when the watcher fell more than its
// limit behind (the queued events are discarded then), any other error when it
// was cancelled or the Manager closed. The returned slice is valid until the
// next Take; the events are shared and must not be modified.
func (w *Watch) Take() ([]*Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs := w.queue
	clear(w.spare)
	w.queue, w.spare = w.spare[:0], evs
	if cap(w.queue) > watchKeep {
		w.queue = nil
	}
	return evs, w.end
}

// Cancel ends the watch; it is safe to call more than once.
func (w *Watch) Cancel() {
	w.cancels.Do(func() {
		w.m.mu.Lock()
		w.m.unwatchLocked(w)
		w.m.mu.Unlock()
		w.mu.Lock()
		w.endLocked(errWatchEnded)
		w.mu.Unlock()
	})
}

// endLocked records why the watch is over, unless it already is. w.mu must be held.
func (w *Watch) endLocked(err error) {
	if w.end == nil {
		w.end = err
	}
	w.signal()
}

func (w *Watch) signal() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// push queues ev, or ends the watch when its backlog is full. It reports whether
// the watcher is still subscribed. m.mu must be held (which keeps events in order).
func (w *Watch) push(ev *Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end != nil {
		return false
	}
	if len(w.queue) >= w.limit {
		w.queue, w.spare = nil, nil
		w.endLocked(ErrBacklogExceeded)
		return false
	}
	w.queue = append(w.queue, ev)
	w.signal()
	return true
}

// emitLocked delivers an event about mc to every watcher. m.mu must be held,
// which keeps events in order.
func (m *Manager) emitLocked(kind EventKind, mc *machine, reason Reason) {
	if kind != MachineStateChanged {
		m.hostNamesChangedLocked()
	}
	if len(m.subs) == 0 {
		return
	}
	mi := mc.snapshot()
	ev := &Event{Kind: kind, Name: mi.Name, Reason: reason, Machine: &mi}
	for w := range m.subs {
		if !w.push(ev) {
			m.log.Warn("dropping event watcher that fell behind", "backlog", w.limit)
			m.unwatchLocked(w)
		}
	}
}

// closeWatchesLocked ends every watch as the Manager closes. m.mu must be held.
func (m *Manager) closeWatchesLocked() {
	for w := range m.subs {
		w.mu.Lock()
		w.endLocked(errWatchEnded)
		w.mu.Unlock()
	}
	clear(m.subs)
	clear(m.watchesOf)
	m.unprivWatches = 0
}
