package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// memTrimmer gives the Go heap's slack back to the kernel once a burst of
// registry changes, or of Varlink connections, is over. The collector lets
// the heap grow to twice its live data (never less than its 4 MiB minimum)
// before it collects, and returns freed pages only slowly: a daemon that
// registered 10,000 machines held twice their size, one that saw a thousand
// short-lived machines come and go stayed megabytes above its size at start,
// and a storm of userdb lookups left the heap it grew for as long as the
// daemon ran, where a C daemon's free() hands most of it back at once. One
// collection and release after a quiet moment costs a few milliseconds per
// burst and nothing per call; a slow trickle of changes trims only when the
// slack has grown past a quarter of the live heap, rarer than the collector's
// own cycles.
type memTrimmer struct {
	quiet    time.Duration               // how long neither the registry nor a connection must have changed
	minSlack uint64                      // slack below which a trim is never worth it
	trim     func()                      // debug.FreeOSMemory; tests count calls instead
	heap     func() (slack, live uint64) // heapSlack; tests set it

	mu    sync.Mutex
	timer *time.Timer
}

// The trim runs once the registry has not changed for trimQuiet, if the heap
// holds more than trimMinSlack and a quarter of its live data beyond it.
const (
	trimQuiet    = 500 * time.Millisecond
	trimMinSlack = 1 << 20
)

func newMemTrimmer(quiet time.Duration, minSlack uint64) *memTrimmer {
	return &memTrimmer{quiet: quiet, minSlack: minSlack, trim: debug.FreeOSMemory, heap: heapSlack}
}

// changed (re)starts the quiet period; the registry calls it with its lock
// held, and every Varlink server as each connection ends, so it only resets a
// timer.
func (t *memTrimmer) changed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(t.quiet, t.fire)
		return
	}
	t.timer.Reset(t.quiet)
}

func (t *memTrimmer) fire() {
	if slack, live := t.heap(); slack >= max(t.minSlack, live/4) {
		t.trim()
	}
}

func (t *memTrimmer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}

// heapSlack reports the heap the daemon holds in memory beyond what was live
// at the last collection (garbage, free spans not yet returned, unused parts
// of spans), and that live size. Machines removed since that collection make
// the true slack larger.
func heapSlack() (slack, live uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	var v [4]uint64
	for i, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			v[i] = x.Value.Uint64()
		}
	}
	held, live := v[0]+v[1]+v[2], v[3]
	if held <= live {
		return 0, live
	}
	return held - live, live
}
