package main

import (
	"runtime"
	"testing"
	"time"
)

// A burst of changes leads to one trim once it is over, and only when the
// heap holds enough slack to be worth it: at least the floor, and at least a
// quarter of the live heap.
func TestMemTrimmerTrimsOnceAfterABurst(t *testing.T) {
	trims := make(chan struct{}, 16)
	slack, live := uint64(4<<20), uint64(8<<20)
	tr := &memTrimmer{quiet: 200 * time.Millisecond, minSlack: 1 << 20,
		trim: func() { trims <- struct{}{} }, heap: func() (uint64, uint64) { return slack, live }}
	defer tr.stop()
	for range 100 {
		tr.changed()
	}
	select {
	case <-trims:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after a burst of changes")
	}
	// Only the last change's quiet period ends in a check: one trim per burst.
	time.Sleep(400 * time.Millisecond)
	if n := len(trims); n != 0 {
		t.Errorf("%d more trims after one burst", n)
	}

	for _, c := range []struct{ slack, live uint64 }{{100 << 10, 0}, {3 << 20, 16 << 20}} {
		checked := make(chan struct{})
		tr.heap = func() (uint64, uint64) { close(checked); return c.slack, c.live }
		tr.changed()
		<-checked
		tr.stop()
		if n := len(trims); n != 0 {
			t.Errorf("trimmed with %d bytes of slack and %d live", c.slack, c.live)
		}
	}
}

// The slack figure comes from the runtime: garbage made after a collection
// shows in it.
func TestHeapSlackSeesGarbage(t *testing.T) {
	runtime.GC()
	var keep []byte
	for range 512 {
		keep = make([]byte, 8<<10) // each replaces the last: garbage
	}
	runtime.KeepAlive(keep)
	if s, _ := heapSlack(); s < 2<<20 {
		t.Errorf("heapSlack = %d after 4 MiB of garbage", s)
	}
}
