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
	mc := &machine{
		leader:            leader,
		realtime:          rec.Realtime,
		monotonic:         rec.Monotonic,
		supervisor:        rec.Supervisor,
		supervisorPIDFDID: rec.SupervisorPIDFDID,
		uid:               rec.UID,
		class:             kindOf(Class(rec.Class)),
	}
	// One allocation for both strings: the request's own copies are garbage
	// once the record is saved.
	both := rec.Name + rec.Unit
	mc.name, mc.unit = both[:len(rec.Name)], both[len(rec.Name):]
	d := machineDetails{
		service:           rec.Service,
		rootDirectory:     rec.RootDirectory,
		subgroup:          rec.Subgroup,
		sshAddress:        rec.SSHAddress,
		sshPrivateKeyPath: rec.SSHPrivateKeyPath,
		control:           rec.ControlAddress,
		id:                rec.ID,
		vsockCID:          rec.VSockCID,
	}
	if len(rec.NetIf) > 0 {
		d.netIf = append([]int(nil), rec.NetIf...)
	}
	if !d.bare() {
		mc.details = &d
	}
	return mc
}
