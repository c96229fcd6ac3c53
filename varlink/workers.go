package varlink

import (
	"slices"
	"sync"
	"time"
)

// workers runs each connection on a goroutine that served an earlier one when
// one is idle. A fresh goroutine starts on a small stack and grows it, by
// copying, on its connection's first JSON decode: for one-call connections, as
// glibc's nss-systemd and varlinkctl make them, that was 7 % of the daemon's
// CPU. A goroutine that finds no work for idleFor, or finds maxIdle others
// already waiting, ends; so do the idle ones when the server stops.
type workers struct {
	maxIdle int
	idleFor time.Duration
	quit    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	idle    []*worker // most recently idle last: it is handed the next job
	live    int
	stopped bool
}

// worker is one goroutine's inbox; a job is sent only to a worker taken off
// the idle list, so the send never blocks.
type worker struct{ jobs chan func() }

func newWorkers(maxIdle int, idleFor time.Duration) *workers {
	return &workers{maxIdle: maxIdle, idleFor: idleFor, quit: make(chan struct{})}
}

// run runs f on an idle worker, or on a new goroutine.
func (w *workers) run(f func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wk.jobs <- f
		return
	}
	w.live++
	w.mu.Unlock()
	go w.loop(&worker{jobs: make(chan func(), 1)}, f)
}

// stop retires the idle workers at once; busy ones end after their job.
func (w *workers) stop() {
	w.once.Do(func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		close(w.quit)
	})
}

// counts reports the worker goroutines in existence and those idle.
func (w *workers) counts() (live, idle int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live, len(w.idle)
}

func (w *workers) loop(wk *worker, f func()) {
	var t *time.Timer
	for {
		f()
		f = nil // let the finished connection's state go while idle
		if !w.goIdle(wk) {
			return
		}
		if t == nil {
			t = time.NewTimer(w.idleFor)
		} else {
			t.Reset(w.idleFor)
		}
		select {
		case f = <-wk.jobs:
			t.Stop()
			continue
		case <-t.C:
		case <-w.quit:
			t.Stop()
		}
		if !w.retire(wk) {
			f = <-wk.jobs // run took us off the list just now: its job is on the way
		} else {
			return
		}
	}
}

// goIdle puts wk on the idle list, unless enough are there or the server
// stopped; then the goroutine ends.
func (w *workers) goIdle(wk *worker) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || len(w.idle) >= w.maxIdle {
		w.live--
		return false
	}
	w.idle = append(w.idle, wk)
	return true
}

// retire takes wk off the idle list and ends it; false if run already took it.
func (w *workers) retire(wk *worker) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := slices.Index(w.idle, wk)
	if i < 0 {
		return false
	}
	w.idle = slices.Delete(w.idle, i, i+1)
	w.live--
	return true
}
