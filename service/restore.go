package service

import (
	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// Restore loads the machines a previous run left in the state directory. A record
// whose leader is gone, or whose PID now names another process (per
// LEADER_PIDFDID), is dropped with its file: a dead leader's machine never comes
// back. Damaged files are logged and skipped.
func (m *Manager) Restore() (restored, dropped int) {
	recs, errs := m.state.Load()
	for _, err := range errs {
		m.log.Warn("skipping damaged state file", "err", err)
	}
	for _, r := range recs {
		if m.restoreOne(r.Record, r.Data) {
			restored++
		} else {
			dropped++
			unit := ""
			if r.Subgroup == "" {
				unit = r.Unit
			}
			if err := m.state.Remove(r.Name, unit); err != nil {
				m.log.Warn("remove state file", "machine", r.Name, "err", err)
			}
		}
	}
	return restored, dropped
}

func (m *Manager) restoreOne(r persist.Record, stored []byte) bool {
	log := m.log.With("machine", r.Name)
	leader, err := proc.Open(r.Leader)
	if err != nil || leader.PID == 1 {
		log.Info("dropping machine whose leader is gone", "leader", r.Leader)
		if leader != nil {
			leader.Close()
		}
		return false
	}
	if r.LeaderPIDFDID != 0 && leader.ID != 0 && r.LeaderPIDFDID != leader.ID {
		log.Info("dropping machine whose leader PID was recycled", "leader", r.Leader)
		leader.Close()
		return false
	}
	if r.LeaderPIDFDID == 0 && startedAfter(leader, r.Monotonic) {
		// Files from upstream 252 carry no pidfd id; a process younger than the
		// machine cannot be its leader.
		log.Info("dropping machine whose leader PID was recycled", "leader", r.Leader)
		leader.Close()
		return false
	}
	var uids, gids proc.IDMap
	if Class(r.Class) == ClassContainer {
		if uids, gids, err = proc.ReadIDMaps(leader); err != nil {
			log.Info("dropping machine whose leader is gone", "leader", r.Leader)
			leader.Close()
			return false
		}
	}
	// The file is rewritten in our format: with the leader's pidfd id (files
	// from older writers have none) and the owner's UID (252 writes none: root).
	r.LeaderPIDFDID, r.HasUID = leader.ID, true
	mc := machineFromRecord(r, leader)
	// A scope we created for it is ours to release again.
	mc.allocated = r.Unit == MachineScope(r.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.machines.get(r.Name) != nil || m.byLeader.get(leader.PID) != nil || (mc.ownsUnit() && m.byUnit.get(r.Unit) != nil) {
		log.Warn("dropping duplicate machine record")
		leader.Close()
		return false
	}
	if !leader.Alive() {
		leader.Close()
		return false
	}
	// Only a file that would change is rewritten: a restart after a crash does
	// not rewrite ten thousand files that already say the same.
	if _, err := m.state.SaveIfChanged(r, stored); err != nil {
		log.Warn("rewrite state file", "err", err)
	}
	m.perUID[mc.uid]++ // restored machines count, but are never refused
	m.startLocked(mc, ReasonRestored, uids, gids)
	return true
}

// startedAfter reports whether the process started clearly after monotonic µs
// since boot (one second of slack for clock granularity).
func startedAfter(p *proc.PidRef, monotonic uint64) bool {
	if monotonic == 0 {
		return false
	}
	st, err := proc.StartMicros(p.PID)
	if err != nil {
		return false
	}
	return st > monotonic+1_000_000
}
