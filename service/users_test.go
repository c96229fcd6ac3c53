package service

import (
	"errors"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

func newIndexOnlyManager() *Manager {
	m := &Manager{}
	shifted := proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}
	m.ids.add("rawhide", shifted, shifted)
	m.ids.add("plain", proc.IDMap{{Inner: 0, Outer: 0, Count: 4294967295}}, proc.IDMap{{Inner: 0, Outer: 0, Count: 4294967295}})
	dotted := proc.IDMap{{Inner: 0, Outer: 1310720, Count: 65536}}
	m.ids.add("a.b", dotted, dotted)
	long := proc.IDMap{{Inner: 0, Outer: 1966080, Count: 65536}}
	m.ids.add("averyveryverylongmachinename", long, long)
	complexMap := proc.IDMap{{Inner: 0, Outer: 2621440, Count: 1000}, {Inner: 1000, Outer: 3000000, Count: 64536}}
	m.ids.add("multi", complexMap, complexMap)
	return m
}

func TestSynthesizedUsers(t *testing.T) {
	m := newIndexOnlyManager()
	u, err := m.UserByUID(656360)
	if err != nil || u.Name != "vu-rawhide-1000" || u.Inner != 1000 || u.RealName(false) != "UID 1000 of Container rawhide" {
		t.Fatalf("UserByUID: %+v %v", u, err)
	}
	u, err = m.UserByName("vu-rawhide-1000")
	if err != nil || u.ID != 656360 {
		t.Fatalf("UserByName: %+v %v", u, err)
	}
	g, err := m.GroupByName("vg-rawhide-5")
	if err != nil || g.ID != 655365 {
		t.Fatalf("GroupByName: %+v %v", g, err)
	}
	if u, err := m.UserByUID(3000000 + 5); err != nil || u.Name != "vu-multi-1005" {
		t.Errorf("complex map second line: %+v %v", u, err)
	}
	for _, uid := range []uint32{0, 1000, 65535, 655360 + 65536, 1310720, 1966080, 4294967295} {
		if u, err := m.UserByUID(uid); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("UserByUID(%d) = %+v, %v; want not found", uid, u, err)
		}
	}
	for _, name := range []string{
		"vu-plain-0",       // no user namespace: would be host uid 0
		"vu-rawhide-65536", // beyond the range
		"vu-rawhide-01",    // not canonical
		"vu-rawhide-",      // no number
		"vu-nope-0",        // no such machine
		"vg-rawhide-0",     // group prefix for a user
		"vu-a.b-0",         // dots are not valid in user names
		"vu-averyveryverylongmachinename-0",
		"root",
	} {
		if u, err := m.UserByName(name); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("UserByName(%q) = %+v, %v; want not found", name, u, err)
		}
	}
	m.ids.remove("rawhide")
	if _, err := m.UserByUID(656360); err == nil {
		t.Error("unregistered machine still resolves")
	}
}

// 65535 and 4294967295 are not ids (systemd's uid_is_valid): a container's inner
// 65535 never becomes a synthesized user or a mapping, and MapFrom/MapTo refuse
// them as arguments. 4294967294 is an ordinary id.
func TestInvalidIDsNeverMapped(t *testing.T) {
	m := newIndexOnlyManager()
	top := proc.IDMap{{Inner: 0, Outer: 4294901760, Count: 65535}}
	m.ids.add("top", top, top)

	inner65535 := uint32(655360 + 65535) // rawhide's inner 65535
	if u, err := m.UserByUID(inner65535); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("UserByUID(%d) = %+v, %v; want not found", inner65535, u, err)
	}
	if g, err := m.GroupByGID(inner65535); !errors.Is(err, ErrNoSuchGroup) {
		t.Errorf("GroupByGID(%d) = %+v, %v; want not found", inner65535, g, err)
	}
	for _, name := range []string{"vu-rawhide-65535", "vu-rawhide-4294967295"} {
		if u, err := m.UserByName(name); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("UserByName(%q) = %+v, %v; want not found", name, u, err)
		}
	}
	if g, err := m.GroupByName("vg-rawhide-65535"); !errors.Is(err, ErrNoSuchGroup) {
		t.Errorf("GroupByName(vg-rawhide-65535) = %+v, %v; want not found", g, err)
	}
	if _, err := m.MapTo(&inner65535, nil); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("MapTo(uid %d) = %v, want ErrNoSuchUser", inner65535, err)
	}
	if _, err := m.MapTo(nil, &inner65535); !errors.Is(err, ErrNoSuchGroup) {
		t.Errorf("MapTo(gid %d) = %v, want ErrNoSuchGroup", inner65535, err)
	}

	for _, bad := range []uint32{65535, 4294967295} {
		if _, err := m.MapTo(&bad, nil); !isInvalidArg(err, "uid") {
			t.Errorf("MapTo(uid %d) = %v, want invalid uid", bad, err)
		}
		if _, err := m.MapTo(nil, &bad); !isInvalidArg(err, "gid") {
			t.Errorf("MapTo(gid %d) = %v, want invalid gid", bad, err)
		}
		if _, err := m.MapFrom(root, Selector{Name: "rawhide"}, &bad, nil); !isInvalidArg(err, "uid") {
			t.Errorf("MapFrom(uid %d) = %v, want invalid uid", bad, err)
		}
		if _, err := m.MapFrom(root, Selector{Name: "rawhide"}, nil, &bad); !isInvalidArg(err, "gid") {
			t.Errorf("MapFrom(gid %d) = %v, want invalid gid", bad, err)
		}
	}

	// 4294967294 is valid: upstream synthesizes it like any other owned id.
	if u, err := m.UserByUID(4294967294); err != nil || u.Name != "vu-top-65534" {
		t.Errorf("UserByUID(4294967294) = %+v, %v; want vu-top-65534", u, err)
	}
	if u, err := m.UserByName("vu-top-65534"); err != nil || u.ID != 4294967294 {
		t.Errorf("UserByName(vu-top-65534) = %+v, %v; want 4294967294", u, err)
	}
}

func isInvalidArg(err error, field string) bool {
	ia, ok := AsInvalidArg(err)
	return ok && ia.Field == field
}

// The GECOS text of a lookup's reply costs the string and nothing else.
func TestRealNameAllocations(t *testing.T) {
	r := UserRecord{Name: "vu-rawhide-1000", ID: 656360, Machine: "rawhide", Inner: 1000}
	var got string
	if allocs := testing.AllocsPerRun(100, func() { got = r.RealName(true) }); allocs > 1 {
		t.Errorf("RealName: %.0f allocations", allocs)
	}
	if got != "GID 1000 of Container rawhide" {
		t.Errorf("RealName(true) = %q", got)
	}
	long := UserRecord{Machine: "averyveryverylongmachinenameaveryveryverylongmachinenameaveryveryverylongmachinename", Inner: 4294967294}
	if got := long.RealName(false); got != "UID 4294967294 of Container "+long.Machine {
		t.Errorf("RealName(false) = %q", got)
	}
}
