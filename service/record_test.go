package service

import (
	"os"
	"reflect"
	"testing"

	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// Every field of a record reaches the machine, and every field of the machine
// (but the viewer's mark) comes from the record or the leader: a field added to
// one side and not mapped fails here.
func TestMachineFromRecordMapsEveryField(t *testing.T) {
	leader, err := proc.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	if leader.ID == 0 {
		t.Skip("no pidfs: processes have no pidfd id to map")
	}
	rec := persist.Record{
		Name: "m", UID: 1000, HasUID: true, Unit: "u.scope", Subgroup: "sub", Service: "svc",
		RootDirectory: "/r", ID: [16]byte{1}, Leader: leader.PID, LeaderPIDFDID: leader.ID,
		Supervisor: 7, SupervisorPIDFDID: 8, Class: "container", Realtime: 10, Monotonic: 11,
		NetIf: []int{5}, VSockCID: 3, SSHAddress: "vsock/3", SSHPrivateKeyPath: "/k", ControlAddress: "unix:/c",
	}
	rv := reflect.ValueOf(rec)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Errorf("test record leaves %s empty", rv.Type().Field(i).Name)
		}
	}
	mi := machineFromRecord(rec, leader).snapshot()
	want := MachineInfo{
		Name: "m", ID: [16]byte{1}, Service: "svc", Class: ClassContainer, Leader: processID(leader),
		Supervisor: ProcessID{PID: 7, PIDFDID: 8, BootID: bootID()}, RootDirectory: "/r", Unit: "u.scope",
		Subgroup: "sub", Timestamp: Timestamp{Realtime: 10, Monotonic: 11}, NetIf: []int{5}, VSockCID: 3,
		SSHAddress: "vsock/3", SSHPrivateKeyPath: "/k", ControlAddress: "unix:/c", UID: 1000, State: StateRunning,
	}
	if !reflect.DeepEqual(mi, want) {
		t.Errorf("machine\n %+v\nwant\n %+v", mi, want)
	}
	mv := reflect.ValueOf(mi)
	for i := range mv.NumField() {
		if name := mv.Type().Field(i).Name; name != "Restricted" && mv.Field(i).IsZero() {
			t.Errorf("machineFromRecord leaves %s empty", name)
		}
	}
	rec.NetIf[0] = 9
	if mi.NetIf[0] != 5 {
		t.Error("the machine shares the record's NetIf")
	}
}
