package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// takeN reads events from w until it has n of them, or the watch ends.
func takeN(t *testing.T, w *Watch, n int) ([]*Event, error) {
	t.Helper()
	var got []*Event
	for len(got) < n {
		select {
		case <-w.Ready():
		case <-time.After(20 * time.Second):
			t.Fatalf("waited for %d events, have %d", n, len(got))
		}
		evs, end := w.Take()
		got = append(got, evs...)
		if end != nil {
			return got, end
		}
	}
	return got, nil
}

func TestWatchReasons(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	snap, w := m.Watch(0)
	defer w.Cancel()
	if len(snap) != 1 || snap[0].Name != HostName {
		t.Fatalf("snapshot %+v", snap)
	}
	a, b, c := startSleep(t), startSleep(t), startSleep(t)
	for name, l := range map[string]int{"a": a.Process.Pid, "b": b.Process.Pid, "c": c.Process.Pid} {
		if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "container", Leader: l}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := takeN(t, w, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Unregister(ctx, root, Selector{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	b.Process.Kill()
	evs, err := takeN(t, w, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Terminate(ctx, root, Selector{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	more, err := takeN(t, w, 2)
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, more...)
	want := []struct {
		kind   EventKind
		name   string
		reason Reason
		state  State
	}{
		{MachineRemoved, "a", ReasonUnregistered, StateRunning},
		{MachineRemoved, "b", ReasonLeaderExited, StateRunning},
		{MachineStateChanged, "c", ReasonNone, StateClosing},
		{MachineRemoved, "c", ReasonTerminated, StateClosing},
	}
	for i, ev := range evs {
		if ev.Kind != want[i].kind || ev.Name != want[i].name || ev.Reason != want[i].reason || ev.Machine == nil || ev.Machine.Name != ev.Name || ev.Machine.State != want[i].state {
			t.Errorf("event %d: %+v (machine %+v), want %+v", i, ev, ev.Machine, want[i])
		}
	}
}

// A second Terminate of a closing machine changes nothing, so it announces nothing.
func TestWatchStateChangedOnce(t *testing.T) {
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), StopTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	// A leader that ignores SIGTERM stays until the test kills it.
	l := startSleepIgnoringTerm(t)
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "c", Class: "container", Leader: l.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	_, w := m.Watch(0)
	defer w.Cancel()
	for range 2 {
		if err := m.Terminate(ctx, root, Selector{Name: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Process.Kill()
	evs, err := takeN(t, w, 2)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Kind != MachineStateChanged || evs[1].Kind != MachineRemoved || evs[1].Reason != ReasonTerminated {
		t.Errorf("events %+v", evs)
	}
}

func TestWatchRestored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "machines")
	m, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l := startSleep(t)
	if _, err := m.Register(context.Background(), root, RegisterRequest{Name: "r", Class: "container", Leader: l.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	_, w := m2.Watch(0)
	defer w.Cancel()
	if restored, _ := m2.Restore(); restored != 1 {
		t.Fatalf("restored %d", restored)
	}
	evs, err := takeN(t, w, 1)
	if err != nil || evs[0].Kind != MachineNew || evs[0].Name != "r" || evs[0].Reason != ReasonRestored {
		t.Errorf("events %+v, %v", evs, err)
	}
}

// The snapshot and the events after it tell each name's story without a gap or a
// repeat, however the watch falls among concurrent registrations.
func TestWatchSnapshotBoundary(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	const names, rounds = 4, 50
	var wg sync.WaitGroup
	errc := make(chan error, names)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := startSleep(t)
			name := fmt.Sprintf("n%d", i)
			for range rounds {
				if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "container", Leader: l.Process.Pid}); err != nil {
					errc <- err
					return
				}
				if err := m.Unregister(ctx, root, Selector{Name: name}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	type watched struct {
		present map[string]bool
		w       *Watch
	}
	var ws []watched
	for range 20 {
		snap, w := m.Watch(0)
		defer w.Cancel()
		p := map[string]bool{}
		for _, mi := range snap {
			p[mi.Name] = true
		}
		ws = append(ws, watched{p, w})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i, x := range ws {
		evs, end := x.w.Take()
		if end != nil {
			t.Fatalf("watch %d ended: %v", i, end)
		}
		for _, ev := range evs {
			switch ev.Kind {
			case MachineNew:
				if x.present[ev.Name] {
					t.Fatalf("watch %d: %s registered twice", i, ev.Name)
				}
				x.present[ev.Name] = true
			case MachineRemoved:
				if !x.present[ev.Name] {
					t.Fatalf("watch %d: %s removed while absent", i, ev.Name)
				}
				delete(x.present, ev.Name)
			}
		}
		if len(x.present) != 1 || !x.present[HostName] {
			t.Errorf("watch %d ends with %v", i, x.present)
		}
	}
}

// A watcher that does not read is dropped once its backlog is full, and only
// it: the registry goes on and other watchers get every event. The limit is
// exact: limit events fit.
func TestWatchOverflowDropsOnlyThatWatcher(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	const limit = 6
	_, full := m.Watch(limit)
	defer full.Cancel()
	_, stalled := m.Watch(limit)
	defer stalled.Cancel()
	_, reader := m.Watch(limit)
	defer reader.Cancel()
	l := startSleep(t)
	var got []*Event
	for i := range limit/2 + 1 {
		name := fmt.Sprintf("m%d", i)
		if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "vm", Leader: l.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if err := m.Unregister(ctx, root, Selector{Name: name}); err != nil {
			t.Fatal(err)
		}
		evs, end := reader.Take()
		if end != nil {
			t.Fatalf("reader dropped: %v", end)
		}
		got = append(got, evs...)
		if i == limit/2-1 {
			// Exactly limit events are queued: still subscribed.
			evs, end := full.Take()
			if end != nil || len(evs) != limit {
				t.Fatalf("at the limit: %d events, %v", len(evs), end)
			}
		}
	}
	if len(got) != limit+2 {
		t.Errorf("reader got %d events, want %d", len(got), limit+2)
	}
	if evs, end := stalled.Take(); !errors.Is(end, ErrBacklogExceeded) || len(evs) != 0 {
		t.Errorf("stalled watcher: %d events, %v", len(evs), end)
	}
	m.mu.Lock()
	_, still := m.subs[stalled]
	m.mu.Unlock()
	if still {
		t.Error("stalled watcher still subscribed")
	}
	// Watching again starts afresh.
	snap, again := m.Watch(limit)
	defer again.Cancel()
	if len(snap) != 1 {
		t.Errorf("fresh snapshot %+v", snap)
	}
	if evs, end := again.Take(); end != nil || len(evs) != 0 {
		t.Errorf("fresh watch: %d events, %v", len(evs), end)
	}
}

func TestWatchEndsOnCancelAndClose(t *testing.T) {
	m := newTestManager(t)
	_, w := m.Watch(0)
	w.Cancel()
	w.Cancel()
	<-w.Ready()
	if _, end := w.Take(); end == nil || errors.Is(end, ErrBacklogExceeded) {
		t.Errorf("cancelled watch: %v", end)
	}
	_, w2 := m.Watch(0)
	m.Close()
	<-w2.Ready()
	if _, end := w2.Take(); end == nil {
		t.Error("watch outlived its Manager")
	}
	if _, w3 := m.Watch(0); w3 != nil {
		if _, end := w3.Take(); end == nil {
			t.Error("watch of a closed Manager")
		}
	}
}

func startSleepIgnoringTerm(t *testing.T) *exec.Cmd {
	t.Helper()
	// The disposition survives the exec; "ready" says it is in place, so no
	// SIGTERM can come before it.
	cmd := exec.Command("sh", "-c", "trap '' TERM; echo ready; exec sleep 1000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("leader ignoring SIGTERM: %q %v", line, err)
	}
	return cmd
}

// An unprivileged caller holds at most MaxWatchesPerUID watches, all of them
// together MaxUnprivilegedWatches; a watch that ends gives its place back, and
// root is not counted.
func TestWatchAsCaps(t *testing.T) {
	m := newTestManager(t)
	user := func(uid uint32) Caller { return Caller{UID: uid, PIDFD: -1} }
	var held []*Watch
	defer func() {
		for _, w := range held {
			w.Cancel()
		}
	}()
	for i := 0; i < MaxWatchesPerUID; i++ {
		_, w, err := m.WatchAs(user(1000), 0)
		if err != nil {
			t.Fatalf("watch %d of uid 1000: %v", i, err)
		}
		held = append(held, w)
	}
	if _, _, err := m.WatchAs(user(1000), 0); !errors.Is(err, ErrTooManyWatches) {
		t.Fatalf("watch past the per-uid cap: %v", err)
	}
	held[0].Cancel()
	_, w, err := m.WatchAs(user(1000), 0)
	if err != nil {
		t.Fatalf("a cancelled watch did not give its place back: %v", err)
	}
	held[0] = w
	for uid := uint32(2000); len(held) < MaxUnprivilegedWatches; uid++ {
		for i := 0; i < MaxWatchesPerUID && len(held) < MaxUnprivilegedWatches; i++ {
			_, w, err := m.WatchAs(user(uid), 0)
			if err != nil {
				t.Fatalf("watch %d of uid %d: %v", i, uid, err)
			}
			held = append(held, w)
		}
	}
	if _, _, err := m.WatchAs(user(9999), 0); !errors.Is(err, ErrTooManyWatches) {
		t.Fatalf("watch past the unprivileged total: %v", err)
	}
	if _, w, err := m.WatchAs(root, 0); err != nil {
		t.Fatalf("root refused: %v", err)
	} else {
		w.Cancel()
	}
	// A watcher dropped for lagging gives its place back too.
	lag := held[len(held)-1]
	lagOwner := *lag.owner
	m.mu.Lock()
	for range EventBacklog + 1 {
		m.emitLocked(MachineNew, m.machines.get(HostName), ReasonNone)
	}
	n := m.watchesOf[lagOwner]
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("uid %d still counts %d watches after all of them lagged out", lagOwner, n)
	}
}

// A watcher that lagged far behind once does not keep arrays of that backlog:
// once it has taken the backlog and then caught up, neither of its queue
// arrays has room for more than watchKeep events, while one that keeps up
// goes on reusing its arrays.
func TestWatchDropsBacklogArrays(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	_, w := m.Watch(EventBacklog)
	defer w.Cancel()
	l := startSleep(t)
	churn := func(pairs int) {
		for i := range pairs {
			name := fmt.Sprintf("m%d", i)
			if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "vm", Leader: l.Process.Pid}); err != nil {
				t.Fatal(err)
			}
			if err := m.Unregister(ctx, root, Selector{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
	}
	caps := func() (int, int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return cap(w.queue), cap(w.spare)
	}

	churn(watchKeep) // twice watchKeep events, none taken
	if evs, end := w.Take(); end != nil || len(evs) != 2*watchKeep {
		t.Fatalf("backlog: %d events, %v", len(evs), end)
	}
	churn(1)
	if evs, end := w.Take(); end != nil || len(evs) != 2 {
		t.Fatalf("after catching up: %d events, %v", len(evs), end)
	}
	if q, s := caps(); q > watchKeep || s > watchKeep {
		t.Errorf("after catching up the arrays have room for %d and %d events, more than %d", q, s, watchKeep)
	}

	// Keeping up, the watcher swaps the same two arrays back and forth.
	arrays := func() (**Event, **Event) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return unsafe.SliceData(w.queue), unsafe.SliceData(w.spare)
	}
	churn(1)
	w.Take()
	churn(1)
	w.Take()
	q, s := arrays()
	churn(1)
	w.Take()
	if q2, s2 := arrays(); q2 != s || s2 != q || q == nil || s == nil {
		t.Errorf("keeping up: arrays (%p, %p) became (%p, %p), want them swapped", q, s, q2, s2)
	}
}
