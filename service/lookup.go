package service

import (
	"fmt"

	"github.com/machined-go/machined/service/proc"
)

// Selector names the machine a request is about: by Name, by PID (0 = the
// caller), or both, which must agree.
type Selector struct {
	Name    string
	HasPID  bool
	PID     int
	PIDFDID uint64 // when not 0, must match the process behind PID
}

// Get returns one machine.
func (m *Manager) Get(c Caller, sel Selector) (MachineInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.selectLocked(c, sel)
	if err != nil {
		return MachineInfo{}, err
	}
	return mc.snapshot(), nil
}

// GetByPID is GetMachineByPID: the machine a process belongs to, by leader or by
// the unit it runs in. .host is never returned.
func (m *Manager) GetByPID(c Caller, pid int) (MachineInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.byPIDLocked(c, pid, 0)
	if err != nil {
		return MachineInfo{}, err
	}
	return mc.snapshot(), nil
}

// selectLocked resolves a Selector. m.mu must be held.
func (m *Manager) selectLocked(c Caller, sel Selector) (*machine, error) {
	var byName *machine
	if sel.Name != "" {
		if !validLookupName(sel.Name) {
			return nil, invalidArg("name", "invalid machine name %q", sel.Name)
		}
		byName = m.machines[sel.Name]
		if byName == nil {
			return nil, fmt.Errorf("no machine '%s' known: %w", sel.Name, ErrNoSuchMachine)
		}
	}
	if !sel.HasPID {
		if byName == nil {
			return nil, fmt.Errorf("no machine selected: %w", ErrNoSuchMachine)
		}
		return byName, nil
	}
	byPID, err := m.byPIDLocked(c, sel.PID, sel.PIDFDID)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrNoSuchMachine)
	}
	if byName != nil && byName != byPID {
		return nil, fmt.Errorf("name and pid select different machines: %w", ErrNoSuchMachine)
	}
	return byPID, nil
}

// byPIDLocked implements the lookup of upstream's §4.8: exact leader first, then
// the unit of the process's cgroup. m.mu must be held; it reads /proc but never
// blocks on anything slower.
func (m *Manager) byPIDLocked(c Caller, pid int, pidfdID uint64) (*machine, error) {
	if pid < 0 {
		return nil, invalidArg("pid", "invalid PID %d", pid)
	}
	var ref *proc.PidRef
	var err error
	if pid == 0 {
		ref, err = c.pidRef()
	} else {
		ref, err = proc.Open(pid)
	}
	if err != nil {
		return nil, fmt.Errorf("process %d does not exist: %w", pid, ErrNoMachineForPID)
	}
	defer ref.Close()
	if pidfdID != 0 && ref.ID != 0 && pidfdID != ref.ID {
		return nil, fmt.Errorf("pidfd id of process %d does not match: %w", ref.PID, ErrNoMachineForPID)
	}
	if mc := m.byLeader[ref.PID]; mc != nil && (mc.info.Leader.PIDFDID == 0 || ref.ID == 0 || mc.info.Leader.PIDFDID == ref.ID) {
		return mc, nil
	}
	var unit string
	if m.cfg.Units != nil {
		unit, _, err = m.cfg.Units.UnitOfPID(ref.PID)
	} else {
		var path string
		if path, err = proc.CgroupPath(ref.PID); err == nil {
			unit, _ = proc.UnitFromCgroupPath(path)
		}
	}
	if err == nil && unit != "" {
		if mc := m.byUnit[unit]; mc != nil {
			return mc, nil
		}
	}
	return nil, fmt.Errorf("PID %d does not belong to any known machine: %w", ref.PID, ErrNoMachineForPID)
}
