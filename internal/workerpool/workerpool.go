package workerpool

import (
	"slices"
	"sync"
	"time"
)

// Pool runs each job on a goroutine that ran an earlier one when one is idle.
// A fresh goroutine starts on a small stack and grows it, by copying, on the
// first deep call: for one-call Varlink connections, as glibc's nss-systemd and
// varlinkctl make them, that was 7 % of the daemon's CPU, and as much of a
// D-Bus registration. A goroutine that finds no work for idleFor, or finds
// maxIdle others already waiting, ends; so do the idle ones on Stop.
type Pool struct {
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

// New returns a pool keeping at most maxIdle goroutines idle, each for at most
// idleFor.
func New(maxIdle int, idleFor time.Duration) *Pool {
	return &Pool{maxIdle: maxIdle, idleFor: idleFor, quit: make(chan struct{})}
}

// Run runs f on an idle worker, or on a new goroutine.
func (w *Pool) Run(f func()) {
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

// Stop retires the idle workers at once; busy ones end after their job.
func (w *Pool) Stop() {
	w.once.Do(func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		close(w.quit)
	})
}

// Counts reports the worker goroutines in existence and those idle.
func (w *Pool) Counts() (live, idle int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live, len(w.idle)
}

func (w *Pool) loop(wk *worker, f func()) {
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
func (w *Pool) goIdle(wk *worker) bool {
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
func (w *Pool) retire(wk *worker) bool {
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
