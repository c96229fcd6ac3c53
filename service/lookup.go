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

	target *pidTarget // set by resolvePID, before the registry lock is taken
}

// pidTarget is the process a Selector names, pinned and placed in its unit
// before the registry lock is taken: opening a pidfd and reading /proc are system
// calls, and no lookup may make the registry wait on them.
type pidTarget struct {
	ref  *proc.PidRef
	unit string // "" when the process is in no unit
	err  error  // why the process could not be pinned; reported by the lookup
}

// resolvePID pins the process sel names, if any, without the registry lock. The
// returned release closes what it pinned; call it once the lookup is done.
func (m *Manager) resolvePID(c Caller, sel Selector) (Selector, func()) {
	if !sel.HasPID {
		return sel, func() {}
	}
	t := m.pinTarget(c, sel.PID, sel.PIDFDID)
	sel.target = t
	return sel, func() { t.ref.Close() }
}

// pinTarget opens the process pid (0: the caller) and reads the unit of its
// cgroup (unitOfProcess).
func (m *Manager) pinTarget(c Caller, pid int, pidfdID uint64) *pidTarget {
	if pid < 0 {
		return &pidTarget{err: invalidArg("pid", "invalid PID %d", pid)}
	}
	var ref *proc.PidRef
	var err error
	if pid == 0 {
		ref, err = c.pidRef()
	} else {
		ref, err = proc.Open(pid)
	}
	if err != nil {
		return &pidTarget{err: fmt.Errorf("process %d does not exist: %w", pid, ErrNoMachineForPID)}
	}
	if pidfdID != 0 && ref.ID != 0 && pidfdID != ref.ID {
		ref.Close()
		return &pidTarget{err: fmt.Errorf("pidfd id of process %d does not match: %w", ref.PID, ErrNoMachineForPID)}
	}
	t := &pidTarget{ref: ref}
	// A process that exited meanwhile is in no unit; it can still be found
	// as a leader.
	t.unit, _, _ = m.unitOfProcess(ref.PID)
	return t
}

// Get returns one machine.
func (m *Manager) Get(c Caller, sel Selector) (MachineInfo, error) {
	_, mi, err := m.selectMachine(c, sel)
	return mi, err
}

// selectMachine resolves sel to the registry's record and a snapshot of it.
func (m *Manager) selectMachine(c Caller, sel Selector) (*machine, MachineInfo, error) {
	sel, release := m.resolvePID(c, sel)
	defer release()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.selectLocked(sel)
	if err != nil {
		return nil, MachineInfo{}, err
	}
	return mc, mc.snapshot(), nil
}

// GetByPID is GetMachineByPID: the machine a process belongs to, by leader or by
// the unit it runs in. .host is never returned.
func (m *Manager) GetByPID(c Caller, pid int) (MachineInfo, error) {
	t := m.pinTarget(c, pid, 0)
	defer t.ref.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	mc, err := m.byPIDLocked(t)
	if err != nil {
		return MachineInfo{}, err
	}
	return mc.snapshot(), nil
}

// selectLocked resolves a Selector that went through resolvePID. m.mu must be
// held.
func (m *Manager) selectLocked(sel Selector) (*machine, error) {
	var byName *machine
	if sel.Name != "" {
		if !ValidLookupName(sel.Name) {
			return nil, invalidArg("name", "invalid machine name %q", sel.Name)
		}
		byName = m.machines.get(sel.Name)
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
	byPID, err := m.byPIDLocked(sel.target)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrNoSuchMachine)
	}
	if byName != nil && byName != byPID {
		return nil, fmt.Errorf("name and pid select different machines: %w", ErrNoSuchMachine)
	}
	return byPID, nil
}

// byPIDLocked implements upstream's lookup by PID on a pinned process: the
// machine it leads, else the machine owning the unit it runs in. m.mu must be
// held; it only reads the registry.
func (m *Manager) byPIDLocked(t *pidTarget) (*machine, error) {
	if t == nil {
		return nil, fmt.Errorf("no process given: %w", ErrNoMachineForPID)
	}
	if t.err != nil {
		return nil, t.err
	}
	ref := t.ref
	if mc := m.byLeader.get(ref.PID); mc != nil && (mc.leader.ID == 0 || ref.ID == 0 || mc.leader.ID == ref.ID) {
		return mc, nil
	}
	if t.unit != "" {
		if mc := m.byUnit.get(t.unit); mc != nil {
			return mc, nil
		}
	}
	return nil, fmt.Errorf("PID %d does not belong to any known machine: %w", ref.PID, ErrNoMachineForPID)
}
