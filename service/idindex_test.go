package service

import (
	"slices"
	"strconv"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

func TestIDIndex(t *testing.T) {
	var x idIndex
	x.add("a", proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}, proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}})
	x.add("b", proc.IDMap{{Inner: 0, Outer: 131072, Count: 65536}}, proc.IDMap{{Inner: 0, Outer: 131072, Count: 65536}})
	x.add("plain", proc.IDMap{{Inner: 0, Outer: 0, Count: 4294967295}}, proc.IDMap{{Inner: 0, Outer: 0, Count: 4294967295}})
	for _, tc := range []struct {
		host  uint32
		name  string
		inner uint32
		ok    bool
	}{
		{655360, "a", 0, true}, {655360 + 1000, "a", 1000, true}, {655360 + 65535, "a", 65535, true},
		{655360 + 65536, "", 0, false}, {131072 + 5, "b", 5, true}, {0, "", 0, false}, {1000, "", 0, false},
	} {
		name, inner, ok := x.uidOwner(tc.host)
		if ok != tc.ok || name != tc.name || inner != tc.inner {
			t.Errorf("uidOwner(%d) = %q %d %v, want %q %d %v", tc.host, name, inner, ok, tc.name, tc.inner, tc.ok)
		}
	}
	if h, present, ok := x.toHost("a", 1000, false); !present || !ok || h != 656360 {
		t.Errorf("toHost(a, 1000) = %d %v %v", h, present, ok)
	}
	x.remove("a")
	if _, _, ok := x.uidOwner(655360); ok {
		t.Error("removed container still owns its range")
	}
	if _, present, _ := x.toHost("a", 0, false); present {
		t.Error("removed container still translates")
	}
	if name, _, ok := x.gidOwner(131073); !ok || name != "b" {
		t.Error("b lost its gid range when a was removed")
	}
}

// A container whose uid and gid maps differ keeps both, each in its order.
func TestIDIndexKeepsDistinctMaps(t *testing.T) {
	var x idIndex
	uids := proc.IDMap{{Inner: 0, Outer: 655360, Count: 1000}, {Inner: 1000, Outer: 700000, Count: 10}}
	gids := proc.IDMap{{Inner: 0, Outer: 800000, Count: 65536}}
	x.add("c", uids, gids)
	u, g, ok := x.maps("c")
	if !ok || !slices.Equal(u, uids) || !slices.Equal(g, gids) {
		t.Fatalf("maps of c: %v %v %v", u, g, ok)
	}
	if name, inner, ok := x.uidOwner(700005); !ok || name != "c" || inner != 1005 {
		t.Errorf("uid 700005: %q %d %v", name, inner, ok)
	}
	if _, _, ok := x.gidOwner(655360); ok {
		t.Error("the uid map's range owns a gid")
	}
	if name, inner, ok := x.gidOwner(800001); !ok || name != "c" || inner != 1 {
		t.Errorf("gid 800001: %q %d %v", name, inner, ok)
	}
	if _, _, ok := x.maps("d"); ok {
		t.Error("maps of an unknown container")
	}
}

// A range that reaches the top of the id space owns its last id, though its
// end does not fit 32 bits.
func TestIDIndexRangeAtTheTop(t *testing.T) {
	var x idIndex
	top := proc.IDMap{{Inner: 0, Outer: 4294901760, Count: 65536}}
	x.add("top", top, top)
	if name, inner, ok := x.uidOwner(4294967295); !ok || name != "top" || inner != 65535 {
		t.Errorf("uid 4294967295: %q %d %v", name, inner, ok)
	}
}

// A container added again under its name replaces its old ranges.
func TestIDIndexAddAgainReplaces(t *testing.T) {
	var x idIndex
	x.add("c", proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}, proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}})
	x.add("c", proc.IDMap{{Inner: 0, Outer: 1310720, Count: 65536}}, proc.IDMap{{Inner: 0, Outer: 1310720, Count: 65536}})
	if _, _, ok := x.uidOwner(655360); ok {
		t.Error("the old range stayed")
	}
	if name, _, ok := x.gidOwner(1310720); !ok || name != "c" {
		t.Error("the new range is missing")
	}
	if len(x.entries) != 1 || len(x.uids) != 1 || len(x.gids) != 0 {
		t.Errorf("%d entries, %d uid and %d gid ranges", len(x.entries), len(x.uids), len(x.gids))
	}
}

// After a burst of containers the index gives back what it grew to once it
// is down to a quarter of it.
func TestIDIndexShrinks(t *testing.T) {
	var x idIndex
	for i := range 1000 {
		m := proc.IDMap{{Inner: 0, Outer: uint32(65536 * (10 + i)), Count: 65536}}
		x.add(strconv.Itoa(i), m, m)
	}
	peakE, peakR := cap(x.entries), cap(x.uids)
	for i := range 990 {
		x.remove(strconv.Itoa(i))
	}
	if cap(x.entries) >= peakE/4 || cap(x.uids) >= peakR/4 || cap(x.gids) >= peakR/4 {
		t.Errorf("capacities %d %d %d after emptying to 10 of %d %d", cap(x.entries), cap(x.uids), cap(x.gids), peakE, peakR)
	}
	for i := 990; i < 1000; i++ {
		if name, _, ok := x.uidOwner(uint32(65536 * (10 + i))); !ok || name != strconv.Itoa(i) {
			t.Errorf("container %d lost in the shrink", i)
		}
	}
}

// Gid ranges are found among the uid ranges of containers whose maps are
// equal and in their own list for the others; where they overlap, the range
// that starts closest below the id wins, whichever list it is in.
func TestIDIndexGidOverlapAcrossLists(t *testing.T) {
	var x idIndex
	shared := proc.IDMap{{Inner: 0, Outer: 100000, Count: 1000}}
	x.add("shared", shared, shared)
	x.add("own", proc.IDMap{{Inner: 0, Outer: 500000, Count: 10}}, proc.IDMap{{Inner: 0, Outer: 100500, Count: 100}})
	for _, tc := range []struct {
		gid   uint32
		name  string
		inner uint32
	}{{100499, "shared", 499}, {100550, "own", 50}, {100700, "shared", 700}, {500005, "", 0}} {
		name, inner, ok := x.gidOwner(tc.gid)
		if name != tc.name || inner != tc.inner || ok != (tc.name != "") {
			t.Errorf("gid %d: %q %d %v, want %q %d", tc.gid, name, inner, ok, tc.name, tc.inner)
		}
	}
	if name, _, ok := x.uidOwner(100550); !ok || name != "shared" {
		t.Errorf("uid 100550: %q %v", name, ok)
	}
}
