package machine1

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// The set of announced names gives its memory back as it empties: after a
// burst of machines came and went, it holds a small fraction of what it held
// at the burst's peak. A plain map keeps all of it.
func TestAnnouncedShrinksAfterABurst(t *testing.T) {
	const n = 10000
	names := make([]string, n)
	for i := range names {
		names[i] = "bench-churn" + strconv.Itoa(i)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	a := newAnnounced(0)
	for _, name := range names {
		a.add(name)
	}
	full := heap() - before
	for _, name := range names {
		a.remove(name)
	}
	emptied := int64(heap()) - int64(before)
	runtime.KeepAlive(a)
	runtime.KeepAlive(names)
	if emptied > int64(full/8) {
		t.Errorf("the emptied set still holds %d bytes; full it held %d", emptied, full)
	}
}

// Through every copy, the set answers as a map would, for the resynchronization
// that reads it (has, and the range over names).
func TestAnnouncedMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a, want := newAnnounced(4), map[string]bool{}
	for i := range 20000 {
		name := "m" + strconv.Itoa(r.IntN(3000))
		// Adding dominates the first half, removing the second, more so as it
		// goes: the set grows, then empties through several copies.
		if r.IntN(10000) < 10000-i {
			a.add(name)
			want[name] = true
		} else {
			a.remove(name)
			delete(want, name)
		}
		if a.has(name) != want[name] {
			t.Fatalf("step %d: has(%q) = %v, want %v", i, name, a.has(name), want[name])
		}
	}
	if len(a.names) != len(want) {
		t.Fatalf("set holds %d names, want %d", len(a.names), len(want))
	}
	for name := range a.names {
		if !want[name] {
			t.Fatalf("set holds %q, removed", name)
		}
	}
}
