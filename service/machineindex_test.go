package service

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func nameIndex() machineIndex[string] {
	return newMachineIndex(func(mc *machine) string { return mc.name })
}

// The index answers as a map would, through any order of sets and removes,
// and keeps its machines in key order.
func TestMachineIndexActsAsMap(t *testing.T) {
	x := nameIndex()
	ref := map[string]*machine{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		name := strconv.Itoa(r.IntN(300))
		switch r.IntN(3) {
		case 0, 1:
			mc := &machine{name: name}
			x.set(mc)
			ref[name] = mc
		case 2:
			if mc := ref[name]; mc != nil {
				x.remove(mc)
				delete(ref, name)
			}
		}
	}
	if x.len() != len(ref) {
		t.Fatalf("%d machines, want %d", x.len(), len(ref))
	}
	for name, mc := range ref {
		if x.get(name) != mc {
			t.Errorf("%s: not the machine set last", name)
		}
	}
	if x.get("nonexistent") != nil {
		t.Error("found a machine never set")
	}
	if !slices.IsSortedFunc(x.all(), func(a, b *machine) int { return strings.Compare(a.name, b.name) }) {
		t.Error("not in name order")
	}
}

// A machine that was replaced under its key (a leader PID that a new machine
// took while the old machine's exit was not yet seen) removes nothing.
func TestMachineIndexRemoveOnlyItsOwn(t *testing.T) {
	x := newMachineIndex(func(mc *machine) int { return mc.supervisor })
	old, cur := &machine{supervisor: 7}, &machine{supervisor: 7}
	x.set(old)
	x.set(cur)
	x.remove(old)
	if x.get(7) != cur || x.len() != 1 {
		t.Error("removing the replaced machine removed its successor")
	}
	x.remove(cur)
	if x.get(7) != nil || x.len() != 0 {
		t.Error("the machine stayed")
	}
}

// After a burst the index gives its slice back once it is down to a quarter
// of it, but not for a small slice.
func TestMachineIndexShrinks(t *testing.T) {
	x := nameIndex()
	ms := make([]*machine, 1000)
	for i := range ms {
		ms[i] = &machine{name: strconv.Itoa(i)}
		x.set(ms[i])
	}
	peak := cap(x.all())
	for _, mc := range ms[:990] {
		x.remove(mc)
	}
	if c := cap(x.all()); c >= peak/4 || c < x.len() {
		t.Errorf("capacity %d after emptying to %d of a peak of %d", c, x.len(), peak)
	}
	for _, mc := range ms[990:] {
		if x.get(mc.name) != mc {
			t.Errorf("%s lost in the shrink", mc.name)
		}
	}
	small := nameIndex()
	for i := range 64 {
		small.set(&machine{name: strconv.Itoa(i)})
	}
	c := cap(small.all())
	for _, mc := range slices.Clone(small.all()) {
		small.remove(mc)
	}
	if cap(small.all()) != c {
		t.Errorf("a slice of capacity %d was reallocated", c)
	}
}
