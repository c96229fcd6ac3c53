package service

import (
	"testing"

	"github.com/machined-go/machined/service/proc"
)

func TestIDIndex(t *testing.T) {
	var x idIndex
	x.init()
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
