package varlink

import (
	"sync"
	"testing"
	"time"
)

// waitWorkers waits until the pool's counts satisfy ok.
func waitWorkers(t *testing.T, w *workers, what string, ok func(live, idle int) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		live, idle := w.counts()
		if ok(live, idle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d workers, %d idle", what, live, idle)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWorkersReuseThenRetire(t *testing.T) {
	w := newWorkers(2, 200*time.Millisecond)

	// Jobs that come one after the other run on one worker.
	for i := 0; i < 20; i++ {
		done := make(chan struct{})
		w.run(func() { close(done) })
		<-done
		waitWorkers(t, w, "one worker, idle", func(live, idle int) bool { return live == 1 && idle == 1 })
	}

	// A burst of 10 concurrent jobs leaves at most maxIdle workers behind...
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 10; i++ {
		wg.Add(1)
		w.run(func() { defer wg.Done(); <-release })
	}
	if live, _ := w.counts(); live != 10 {
		t.Fatalf("10 blocked jobs on %d workers", live)
	}
	close(release)
	wg.Wait()
	waitWorkers(t, w, "idle workers capped at 2", func(live, idle int) bool { return live == 2 && idle == 2 })

	// ...and they end once idle for idleFor.
	waitWorkers(t, w, "idle workers retired", func(live, _ int) bool { return live == 0 })
}

func TestWorkersStopRetiresIdleAtOnce(t *testing.T) {
	w := newWorkers(4, time.Hour)
	done := make(chan struct{})
	w.run(func() { close(done) })
	<-done
	waitWorkers(t, w, "one idle worker", func(live, idle int) bool { return live == 1 && idle == 1 })
	w.stop()
	waitWorkers(t, w, "idle worker retired by stop", func(live, _ int) bool { return live == 0 })
	ran := make(chan struct{})
	w.run(func() { close(ran) })
	<-ran
	waitWorkers(t, w, "no worker kept after stop", func(live, _ int) bool { return live == 0 })
}
