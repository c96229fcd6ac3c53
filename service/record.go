package service

import (
	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// machineFromRecord is the one place a machine is built: Register makes the
// record from the request, Restore reads it from the state file, and both then
// save that same record, so what is on disk and what is served cannot drift.
// The leader's PID and pidfd id come from the pinned leader, which callers have
// checked against the record.
func machineFromRecord(rec persist.Record, leader *proc.PidRef) *machine {
	supervisor := ProcessID{PID: rec.Supervisor, PIDFDID: rec.SupervisorPIDFDID}
	if supervisor.PIDFDID != 0 {
		supervisor.BootID = bootID()
	}
	return &machine{
		info: MachineInfo{
			Name:              rec.Name,
			ID:                rec.ID,
			Service:           rec.Service,
			Class:             Class(rec.Class),
			Leader:            processID(leader),
			Supervisor:        supervisor,
			RootDirectory:     rec.RootDirectory,
			Unit:              rec.Unit,
			Subgroup:          rec.Subgroup,
			Timestamp:         Timestamp{Realtime: rec.Realtime, Monotonic: rec.Monotonic},
			NetIf:             append([]int(nil), rec.NetIf...),
			VSockCID:          rec.VSockCID,
			SSHAddress:        rec.SSHAddress,
			SSHPrivateKeyPath: rec.SSHPrivateKeyPath,
			ControlAddress:    rec.ControlAddress,
			UID:               rec.UID,
			State:             StateRunning,
		},
		leader: leader,
	}
}
