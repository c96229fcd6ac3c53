package service

import (
	"os"
	"testing"
	"unsafe"

	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// The registry's record stays within the 96-byte size class of Go's
// allocator, which every one of ten thousand machines pays: the fields most
// machines leave empty live behind one pointer, the class and state are small
// integers, and the leader's PID and pidfd id are read from the pinned leader.
func TestMachineRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(machine{}); n > 96 {
		t.Errorf("machine is %d bytes, want at most 96", n)
	}
}

// A machine registered with no more than a name and a leader has no details,
// and its name and unit share one allocation.
func TestMachineFromRecordCompact(t *testing.T) {
	leader, err := proc.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	mc := machineFromRecord(persist.Record{Name: "m", Unit: "u.scope", Class: "container", VSockCID: VSockCIDAny}, leader)
	if mc.details != nil {
		t.Errorf("details kept for a bare machine: %+v", *mc.details)
	}
	if unsafe.StringData(mc.unit) != (*byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(mc.name)), len(mc.name))) {
		t.Error("name and unit are separate allocations")
	}
	if mi := mc.snapshot(); mi.Name != "m" || mi.Unit != "u.scope" || mi.Class != ClassContainer || mi.State != StateRunning || !mi.OwnsUnit() {
		t.Errorf("snapshot: %+v", mi)
	}
	if mc := machineFromRecord(persist.Record{Name: "n", Class: "vm", VSockCID: VSockCIDAny}, leader); mc.name != "n" || mc.unit != "" || mc.class != kindVM {
		t.Errorf("machine without a unit: %q %q %v", mc.name, mc.unit, mc.class)
	}
	// Each of the rarer fields alone is kept.
	for _, rec := range []persist.Record{
		{Name: "i", ID: [16]byte{1}, VSockCID: VSockCIDAny},
		{Name: "v", VSockCID: 3},
		{Name: "s", Service: "nspawn", VSockCID: VSockCIDAny},
		{Name: "n", NetIf: []int{2}, VSockCID: VSockCIDAny},
	} {
		mi := machineFromRecord(rec, leader).snapshot()
		if mi.ID != rec.ID || mi.VSockCID != rec.VSockCID || mi.Service != rec.Service || len(mi.NetIf) != len(rec.NetIf) {
			t.Errorf("%s: %+v", rec.Name, mi)
		}
	}
}

// A container whose uid and gid maps are the same keeps one of them.
func TestIDIndexKeepsOneMapForEqualMaps(t *testing.T) {
	var x idIndex
	uids := proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}
	gids := proc.IDMap{{Inner: 0, Outer: 655360, Count: 65536}}
	x.add("c", uids, gids)
	i, _ := x.find("c")
	if e := x.entries[i]; len(e.lines) != 1 || !e.same {
		t.Errorf("equal uid and gid maps are kept twice: %+v", *e)
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
