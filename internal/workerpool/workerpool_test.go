package workerpool

import (
	"sync"
	"testing"
	"time"
)

// waitWorkers waits until the pool's counts satisfy ok.
func waitWorkers(t *testing.T, w *Pool, what string, ok func(live, idle int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, idle := w.Counts()
		if ok(live, idle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d workers, %d idle", what, live, idle)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWorkersReuseAndCap(t *testing.T) {
	w := New(2, time.Hour)

	// Jobs that come one after the other run on one worker.
	for i := 0; i < 20; i++ {
		done := make(chan struct{})
		w.Run(func() { close(done) })
		<-done
		waitWorkers(t, w, "one worker, idle", func(live, idle int) bool { return live == 1 && idle == 1 })
	}

	// A burst of 10 concurrent jobs leaves maxIdle workers behind.
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 10; i++ {
		wg.Add(1)
		w.Run(func() { defer wg.Done(); <-release })
	}
	if live, idle := w.Counts(); live != 10 || idle != 0 {
		t.Fatalf("10 blocked jobs: %d workers, %d idle; want 10, 0", live, idle)
	}
	close(release)
	wg.Wait()
	waitWorkers(t, w, "idle workers capped at 2", func(live, idle int) bool { return live == 2 && idle == 2 })
}

func TestWorkersRetireWhenIdle(t *testing.T) {
	w := New(2, 20*time.Millisecond)
	done := make(chan struct{})
	w.Run(func() { close(done) })
	<-done
	waitWorkers(t, w, "idle worker retired after idleFor", func(live, idle int) bool { return live == 0 && idle == 0 })
	// A job after that gets a new worker.
	ran := make(chan struct{})
	w.Run(func() { close(ran) })
	<-ran
}

func TestWorkersStopRetiresIdleAtOnce(t *testing.T) {
	w := New(4, time.Hour)
	done := make(chan struct{})
	w.Run(func() { close(done) })
	<-done
	waitWorkers(t, w, "one idle worker", func(live, idle int) bool { return live == 1 && idle == 1 })
	w.Stop()
	waitWorkers(t, w, "idle worker retired by stop", func(live, _ int) bool { return live == 0 })
	ran := make(chan struct{})
	w.Run(func() { close(ran) })
	<-ran
	waitWorkers(t, w, "no worker kept after stop", func(live, _ int) bool { return live == 0 })
}
