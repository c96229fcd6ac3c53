package service

import (
	"errors"
	"testing"

	"github.com/machined-go/machined/service/proc"
)

func newIndexOnlyManager() *Manager {
	m := &Manager{}
	m.ids.init()
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
