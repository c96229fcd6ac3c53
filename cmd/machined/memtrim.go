package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// memTrimmer gives the Go heap's free pages back to the kernel once a burst of
// removals is over. The collector keeps the heap it grew for the largest
// registry it has seen (twice the live data, and never less than its 4 MiB
// minimum), and returns the rest only slowly: after a thousand short-lived
// machines have come and gone the daemon would stay megabytes above its size
// at start, where a C daemon's free() hands most of it back at once. One
// collection and one release after the registry has been quiet for a moment
// costs a few milliseconds per burst, nothing per call.
// The trim runs once no machine has gone for trimQuiet, if the heap holds at
// least trimMinSlack beyond its live data.
const (
	trimQuiet    = 500 * time.Millisecond
	trimMinSlack = 1 << 20
)

type memTrimmer struct {
	quiet   time.Duration // how long no machine must have gone
	minFree uint64        // heap slack below which a trim is not worth it
	trim    func()        // debug.FreeOSMemory; tests count calls instead
	slack   func() uint64 // heapSlack; tests set it

	mu    sync.Mutex
	timer *time.Timer
}

func newMemTrimmer(quiet time.Duration, minFree uint64) *memTrimmer {
	return &memTrimmer{quiet: quiet, minFree: minFree, trim: debug.FreeOSMemory, slack: heapSlack}
}

// removed (re)starts the quiet period; the registry calls it with its lock
// held, so it only resets a timer.
func (t *memTrimmer) removed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(t.quiet, t.fire)
		return
	}
	t.timer.Reset(t.quiet)
}

func (t *memTrimmer) fire() {
	if t.slack() >= t.minFree {
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

// heapSlack is the heap the daemon holds in memory beyond what was live at
// the last collection: garbage, free spans not yet returned, unused parts of
// spans. Machines removed since that collection make the true slack larger.
func heapSlack() uint64 {
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
	held := v[0] + v[1] + v[2]
	if held <= v[3] {
		return 0
	}
	return held - v[3]
}
