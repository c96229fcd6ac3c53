package varlink

import (
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
	work    chan func() // unbuffered: a send succeeds only into a waiting worker
	quit    chan struct{}
	once    sync.Once
	maxIdle int
	idleFor time.Duration

	mu         sync.Mutex
	idle, live int
}

func newWorkers(maxIdle int, idleFor time.Duration) *workers {
	return &workers{work: make(chan func()), quit: make(chan struct{}), maxIdle: maxIdle, idleFor: idleFor}
}

// run runs f on an idle worker, or on a new goroutine.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
	default:
		w.mu.Lock()
		w.live++
		w.mu.Unlock()
		go w.loop(f)
	}
}

// stop retires the idle workers at once; busy ones end after their job.
func (w *workers) stop() { w.once.Do(func() { close(w.quit) }) }

// counts reports the worker goroutines in existence and those idle.
func (w *workers) counts() (live, idle int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live, w.idle
}

func (w *workers) loop(f func()) {
	defer func() {
		w.mu.Lock()
		w.live--
		w.mu.Unlock()
	}()
	var t *time.Timer
	for f != nil {
		f()
		f = nil // let the finished connection's state go while idle
		if !w.goIdle() {
			return
		}
		if t == nil {
			t = time.NewTimer(w.idleFor)
		} else {
			t.Reset(w.idleFor)
		}
		select {
		case f = <-w.work:
			t.Stop()
		case <-t.C:
			f = nil
		case <-w.quit:
			t.Stop()
			f = nil
		}
		w.mu.Lock()
		w.idle--
		w.mu.Unlock()
	}
}

// goIdle counts the caller as idle, unless enough are or the server stopped.
func (w *workers) goIdle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.quit:
		return false
	default:
	}
	if w.idle >= w.maxIdle {
		return false
	}
	w.idle++
	return true
}
