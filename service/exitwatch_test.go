package service

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

func newTestExitWatcher(t *testing.T) (*exitWatcher, *proc.PidRef) {
	t.Helper()
	w, err := newExitWatcher(func(*machine, exitToken) { t.Error("a watch fired; nothing here exits") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	self, err := proc.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { self.Close() })
	return w, self
}

// rewatchable drops pidfd from the epoll set, as closing it would, so the
// same descriptor can be watched again.
func rewatchable(t *testing.T, w *exitWatcher, pidfd int) {
	t.Helper()
	w.rc.Control(func(epfd uintptr) {
		if err := unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, pidfd, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// An event of a forgotten watch, queued before the forget, does not fire the
// watch that reuses its slot.
func TestExitWatchStaleEventOfReusedSlot(t *testing.T) {
	w, self := newTestExitWatcher(t)
	first, second := &machine{name: "first"}, &machine{name: "second"}
	tok1, err := w.watch(self.FD(), first)
	if err != nil {
		t.Fatal(err)
	}
	stale := w.addEvent
	w.forget(tok1)
	rewatchable(t, w, self.FD())
	tok2, err := w.watch(self.FD(), second)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.slot() != tok1.slot() || tok2 == tok1 {
		t.Fatalf("slot not reused under a new token: tokens %#x and %#x", tok1, tok2)
	}
	if mc, _ := w.fired(stale); mc != nil {
		t.Fatalf("the stale event fired %s", mc.name)
	}
	if mc, tok := w.fired(w.addEvent); mc != second || tok != tok2 {
		t.Errorf("the current event fired %v, token %d", mc, tok)
	}
	if mc, _ := w.fired(w.addEvent); mc != nil || w.watching() != 0 {
		t.Error("a watch fired twice")
	}
}

// Once a burst of watches is over, the watcher gives back the slots it grew
// to; up to 64 it keeps, so one machine coming and going allocates nothing.
func TestExitWatchSlotsStartOver(t *testing.T) {
	w, self := newTestExitWatcher(t)
	toks := make([]exitToken, 0, 100)
	for range 100 {
		tok, err := w.watch(self.FD(), &machine{})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		rewatchable(t, w, self.FD())
	}
	for _, tok := range toks {
		w.forget(tok)
	}
	if w.slots != nil || w.free != nil || w.watching() != 0 {
		t.Errorf("%d slots (%d free) kept with no watch", len(w.slots), len(w.free))
	}
	toks = toks[:0]
	for range 20 {
		tok, err := w.watch(self.FD(), &machine{})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		rewatchable(t, w, self.FD())
	}
	slots := cap(w.slots)
	if slots > 64 {
		t.Fatalf("20 watches took %d slots", slots)
	}
	for _, tok := range toks {
		w.forget(tok)
	}
	if w.watching() != 0 || cap(w.slots) != slots {
		t.Errorf("%d watches left, %d of %d slots kept", w.watching(), cap(w.slots), slots)
	}
}

// A machine whose leader's exit was reported forgets its watch only when it
// is finalized, by which time another machine may hold the slot: that forget
// leaves the other machine's watch alone.
func TestExitWatchLateForgetSparesSlotsNextWatch(t *testing.T) {
	w, self := newTestExitWatcher(t)
	first, second := &machine{name: "first"}, &machine{name: "second"}
	tok1, err := w.watch(self.FD(), first)
	if err != nil {
		t.Fatal(err)
	}
	if mc, tok := w.fired(w.addEvent); mc != first || tok != tok1 {
		t.Fatalf("the exit fired %v, token %d", mc, tok)
	}
	rewatchable(t, w, self.FD())
	tok2, err := w.watch(self.FD(), second)
	if err != nil {
		t.Fatal(err)
	}
	ev2 := w.addEvent
	w.forget(tok1)
	if w.watching() != 1 {
		t.Fatal("the late forget dropped the next machine's watch")
	}
	if mc, tok := w.fired(ev2); mc != second || tok != tok2 {
		t.Errorf("the second exit fired %v, token %d", mc, tok)
	}
}
