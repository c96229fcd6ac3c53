package main

import (
	"runtime"
	"testing"
	"time"
)

// A burst of removals leads to one trim once it is over, and only when the
// heap holds enough slack to be worth it.
func TestMemTrimmerTrimsOnceAfterABurst(t *testing.T) {
	trims := make(chan struct{}, 16)
	slack := uint64(4 << 20)
	tr := &memTrimmer{quiet: 200 * time.Millisecond, minFree: 1 << 20,
		trim: func() { trims <- struct{}{} }, slack: func() uint64 { return slack }}
	defer tr.stop()
	for range 100 {
		tr.removed()
	}
	select {
	case <-trims:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after a burst of removals")
	}
	// Only the last removal's quiet period ends in a check: one trim per burst.
	time.Sleep(400 * time.Millisecond)
	if n := len(trims); n != 0 {
		t.Errorf("%d more trims after one burst", n)
	}

	slack = 100 << 10
	checked := make(chan struct{})
	tr.slack = func() uint64 { close(checked); return slack }
	tr.removed()
	<-checked
	tr.stop()
	if n := len(trims); n != 0 {
		t.Errorf("trimmed with only %d bytes of slack", slack)
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
	if s := heapSlack(); s < 2<<20 {
		t.Errorf("heapSlack = %d after 4 MiB of garbage", s)
	}
}
