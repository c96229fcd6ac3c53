package service

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/machined-go/machined/service/proc"
)

// idIndex answers "which container owns host uid X" and "what is uid N of
// container M on the host" from maps read once at registration. It has its own
// lock so userdb lookups never wait on the registry (upstream deadlocked there,
// systemd#40562) and never read /proc: O(log n) in the number of containers.
// Containers are found by name in a sorted slice rather than a hash map, which
// would cost every container its name again and the table's empty slots.
type idIndex struct {
	mu      sync.RWMutex
	entries []*idEntry // sorted by name
	uids    []idRange  // sorted by start
	// gids holds the gid maps that differ from their uid map; a gid map
	// equal to its uid map (the usual case) is found among uids.
	gids []idRange
}

// idEntry is one container's maps: its uid map's lines, then its gid map's,
// unless the two maps are the same (the usual case), which are kept once.
type idEntry struct {
	name  string
	lines proc.IDMap
	split int32 // lines[:split] is the uid map
	same  bool  // the gid map is the uid map
}

func (e *idEntry) uidMap() proc.IDMap { return e.lines[:e.split:e.split] }

func (e *idEntry) gidMap() proc.IDMap {
	if e.same {
		return e.uidMap()
	}
	return e.lines[e.split:]
}

// idRange is one map line that owns host ids [start, start+count).
type idRange struct {
	start, count, inner uint32
	entry               *idEntry
}

func (r idRange) end() uint64 { return uint64(r.start) + uint64(r.count) }

func (x *idIndex) find(name string) (int, bool) {
	return slices.BinarySearchFunc(x.entries, name, func(e *idEntry, name string) int { return strings.Compare(e.name, name) })
}

func (x *idIndex) add(name string, uids, gids proc.IDMap) {
	e := &idEntry{name: name, lines: uids, split: int32(len(uids)), same: slices.Equal(uids, gids)}
	if !e.same {
		e.lines = append(slices.Clip(uids), gids...)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if i, ok := x.find(name); ok {
		old := x.entries[i]
		x.uids, x.gids = removeRanges(x.uids, old), removeRanges(x.gids, old)
		x.entries[i] = e
	} else {
		x.entries = slices.Insert(x.entries, i, e)
	}
	x.uids = insertRanges(x.uids, e, e.uidMap())
	if !e.same {
		x.gids = insertRanges(x.gids, e, e.gidMap())
	}
}

func (x *idIndex) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.find(name)
	if !ok {
		return
	}
	e := x.entries[i]
	x.entries = slices.Delete(x.entries, i, i+1)
	x.uids = removeRanges(x.uids, e)
	x.gids = removeRanges(x.gids, e)
	if c := cap(x.entries); c > 64 && len(x.entries) < c/4 {
		x.entries = slices.Clone(x.entries)
	}
}

// maps returns a container's uid and gid maps; ok is false for a name that
// is not a container known here.
func (x *idIndex) maps(name string) (uids, gids proc.IDMap, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i, ok := x.find(name)
	if !ok {
		return nil, nil, false
	}
	e := x.entries[i]
	return e.uidMap(), e.gidMap(), true
}

// Lines with outer 0 are identity or non-userns ranges: they never own host ids.
func insertRanges(rs []idRange, e *idEntry, m proc.IDMap) []idRange {
	for _, l := range m {
		if l.Outer == 0 || l.Count == 0 {
			continue
		}
		r := idRange{start: l.Outer, count: l.Count, inner: l.Inner, entry: e}
		i := sort.Search(len(rs), func(i int) bool { return rs[i].start > r.start })
		rs = slices.Insert(rs, i, r)
	}
	return rs
}

// removeRanges drops e's ranges; a slice emptied to a quarter of its capacity
// is reallocated, so a burst of containers does not hold its peak for good.
func removeRanges(rs []idRange, e *idEntry) []idRange {
	out := rs[:0]
	for _, r := range rs {
		if r.entry != e {
			out = append(out, r)
		}
	}
	clear(rs[len(out):])
	if c := cap(out); c > 64 && len(out) < c/4 {
		out = slices.Clone(out)
	}
	return out
}

// owner finds the container whose map owns host id h, and the id inside it. When
// ranges overlap (a misconfiguration) the one starting closest below h wins.
// sharedOnly skips the ranges of containers whose gid map differs from their
// uid map: a gid lookup in the uid ranges.
func owner(rs []idRange, h uint32, sharedOnly bool) (r idRange, ok bool) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].start > h })
	for j := i - 1; j >= 0; j-- {
		if r := rs[j]; uint64(h) < r.end() && (!sharedOnly || r.entry.same) {
			return r, true
		}
		if j < i-8 { // overlaps deeper than this are not worth a linear walk
			break
		}
	}
	return idRange{}, false
}

func (r idRange) inside(h uint32) (string, uint32, bool) {
	return r.entry.name, r.inner + (h - r.start), true
}

func (x *idIndex) uidOwner(h uint32) (string, uint32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if r, ok := owner(x.uids, h, false); ok {
		return r.inside(h)
	}
	return "", 0, false
}

func (x *idIndex) gidOwner(h uint32) (string, uint32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	shared, sok := owner(x.uids, h, true)
	own, ook := owner(x.gids, h, false)
	switch {
	case sok && (!ook || shared.start >= own.start):
		return shared.inside(h)
	case ook:
		return own.inside(h)
	}
	return "", 0, false
}

// toHost translates an id inside a container to the host; present reports whether
// the container is known at all.
func (x *idIndex) toHost(name string, inner uint32, group bool) (host uint32, present, ok bool) {
	uids, gids, present := x.maps(name)
	if !present {
		return 0, false, false
	}
	m := uids
	if group {
		m = gids
	}
	host, ok = m.ToHost(inner)
	return host, true, ok
}
