package service

import (
	"slices"
	"sort"
	"sync"

	"github.com/machined-go/machined/service/proc"
)

// idIndex answers "which container owns host uid X" and "what is uid N of
// container M on the host" from maps read once at registration. It has its own
// lock so userdb lookups never wait on the registry (upstream deadlocked there,
// systemd#40562) and never read /proc: O(log n) in the number of containers.
type idIndex struct {
	mu     sync.RWMutex
	byName map[string]*idEntry
	uids   []idRange // sorted by start
	gids   []idRange
}

type idEntry struct {
	name       string
	uids, gids proc.IDMap
}

// idRange is one map line that owns host ids [start, end).
type idRange struct {
	start, end uint64
	inner      uint32
	entry      *idEntry
}

func (x *idIndex) init() { x.byName = map[string]*idEntry{} }

func (x *idIndex) add(name string, uids, gids proc.IDMap) {
	if slices.Equal(uids, gids) {
		gids = uids // the usual case: one map kept for both
	}
	e := &idEntry{name: name, uids: uids, gids: gids}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byName[name] = e
	x.uids = insertRanges(x.uids, e, uids)
	x.gids = insertRanges(x.gids, e, gids)
}

func (x *idIndex) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.byName[name]
	if e == nil {
		return
	}
	delete(x.byName, name)
	x.uids = removeRanges(x.uids, e)
	x.gids = removeRanges(x.gids, e)
}

// Lines with outer 0 are identity or non-userns ranges: they never own host ids.
func insertRanges(rs []idRange, e *idEntry, m proc.IDMap) []idRange {
	for _, l := range m {
		if l.Outer == 0 || l.Count == 0 {
			continue
		}
		r := idRange{start: uint64(l.Outer), end: uint64(l.Outer) + uint64(l.Count), inner: l.Inner, entry: e}
		i := sort.Search(len(rs), func(i int) bool { return rs[i].start > r.start })
		rs = append(rs, idRange{})
		copy(rs[i+1:], rs[i:])
		rs[i] = r
	}
	return rs
}

func removeRanges(rs []idRange, e *idEntry) []idRange {
	out := rs[:0]
	for _, r := range rs {
		if r.entry != e {
			out = append(out, r)
		}
	}
	clear(rs[len(out):])
	return out
}

// owner finds the container whose map owns host id h, and the id inside it. When
// ranges overlap (a misconfiguration) the one starting closest below h wins.
func owner(rs []idRange, h uint32) (name string, inner uint32, ok bool) {
	hv := uint64(h)
	i := sort.Search(len(rs), func(i int) bool { return rs[i].start > hv })
	for j := i - 1; j >= 0; j-- {
		r := rs[j]
		if hv < r.end {
			return r.entry.name, r.inner + uint32(hv-r.start), true
		}
		if j < i-8 { // overlaps deeper than this are not worth a linear walk
			break
		}
	}
	return "", 0, false
}

func (x *idIndex) uidOwner(h uint32) (string, uint32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return owner(x.uids, h)
}

func (x *idIndex) gidOwner(h uint32) (string, uint32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return owner(x.gids, h)
}

// toHost translates an id inside a container to the host; present reports whether
// the container is known at all.
func (x *idIndex) toHost(name string, inner uint32, group bool) (host uint32, present, ok bool) {
	x.mu.RLock()
	e := x.byName[name]
	x.mu.RUnlock()
	if e == nil {
		return 0, false, false
	}
	m := e.uids
	if group {
		m = e.gids
	}
	host, ok = m.ToHost(inner)
	return host, true, ok
}
