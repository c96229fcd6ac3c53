package service

import (
	"testing"
	"unsafe"

	"github.com/machined-go/machined/service/proc"
)

// The registry's record stays within the 320-byte size class of Go's
// allocator: the next classes are 352 and 384 bytes, which every one of ten
// thousand machines would pay. What pushed it over was a copy of the id maps'
// slice headers that only the id index reads, and a generation counter
// nothing read any more.
func TestMachineRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(machine{}); n > 320 {
		t.Errorf("machine is %d bytes, want at most 320", n)
	}
}

// A container whose uid and gid maps are the same keeps one of them.
func TestIDIndexKeepsOneMapForEqualMaps(t *testing.T) {
	var x idIndex
	x.init()
	uids := proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}
	gids := proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}
	x.add("c", uids, gids)
	e := x.byName["c"]
	if &e.gids[0] != &e.uids[0] {
		t.Error("equal uid and gid maps are kept twice")
	}
	if h, present, ok := x.toHost("c", 1000, true); !present || !ok || h != 656360 {
		t.Errorf("gid 1000 of c: %d %v %v", h, present, ok)
	}
	other := proc.IDMap{{Inner: 0, Outer: 1310720, Count: 65536}}
	x.add("d", uids, other)
	if h, _, ok := x.toHost("d", 0, true); !ok || h != 1310720 {
		t.Errorf("distinct maps: gid 0 of d is %d %v", h, ok)
	}
}
