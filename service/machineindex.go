package service

import (
	"cmp"
	"sort"
)

// machineIndex finds machines by one key (name, leader PID, unit): a slice of
// the machines sorted by that key, searched by bisection. A hash map costs each
// entry its key again plus the table's empty slots, several times the one
// pointer an entry costs here; inserting and removing move the pointers after
// the entry, a few microseconds at ten thousand machines, which a registration
// (pidfd, /proc reads, a state file) dwarfs. A key has at most one machine:
// set replaces the one there, as a map would.
type machineIndex[K cmp.Ordered] struct {
	key func(*machine) K
	s   []*machine
}

func newMachineIndex[K cmp.Ordered](key func(*machine) K) machineIndex[K] {
	return machineIndex[K]{key: key}
}

// find returns where k is, or where it would go.
func (x *machineIndex[K]) find(k K) (int, bool) {
	i := sort.Search(len(x.s), func(i int) bool { return x.key(x.s[i]) >= k })
	return i, i < len(x.s) && x.key(x.s[i]) == k
}

// get returns the machine with key k, nil when there is none.
func (x *machineIndex[K]) get(k K) *machine {
	if i, ok := x.find(k); ok {
		return x.s[i]
	}
	return nil
}

// set makes mc the machine of its key.
func (x *machineIndex[K]) set(mc *machine) {
	i, ok := x.find(x.key(mc))
	if ok {
		x.s[i] = mc
		return
	}
	x.s = append(x.s, nil)
	copy(x.s[i+1:], x.s[i:])
	x.s[i] = mc
}

// remove takes mc out, if it is still the machine of its key, and says
// whether it was. A slice that has emptied to a quarter of its capacity is
// reallocated, so a burst of machines does not hold its peak size for good.
func (x *machineIndex[K]) remove(mc *machine) bool {
	i, ok := x.find(x.key(mc))
	if !ok || x.s[i] != mc {
		return false
	}
	copy(x.s[i:], x.s[i+1:])
	x.s[len(x.s)-1] = nil
	x.s = x.s[:len(x.s)-1]
	if c := cap(x.s); c > 64 && len(x.s) < c/4 {
		x.s = append(make([]*machine, 0, 2*len(x.s)), x.s...)
	}
	return true
}

func (x *machineIndex[K]) len() int { return len(x.s) }

// all returns the machines in key order; the slice is the index's own, valid
// until the index next changes.
func (x *machineIndex[K]) all() []*machine { return x.s }
