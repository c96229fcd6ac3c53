package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/machined-go/machined/service/persist"
	"github.com/machined-go/machined/service/proc"
)

// RegisterRequest is a new machine as a client describes it.
type RegisterRequest struct {
	Name    string
	ID      [16]byte
	Service string
	Class   string
	// Leader is the leader's PID; 0 means the caller. LeaderPIDFDID, when not 0,
	// must match the live process (a recycled PID is refused). LeaderRef, when set,
	// is an already pinned leader (D-Bus LeaderPIDFD) and takes ownership.
	Leader        int
	LeaderPIDFDID uint64
	LeaderRef     *proc.PidRef
	leaderField   string // the request field that named Leader, for NameLeader

	RootDirectory     string
	NetIf             []int
	VSockCID          *uint32
	SSHAddress        string
	SSHPrivateKeyPath string
	ControlAddress    string
	// AllocateUnit makes machined create machine-<name>.scope (D-Bus CreateMachine).
	AllocateUnit bool
	// Slice is the slice the new scope goes in; "" means DefaultMachineSlice.
	Slice           string
	ScopeProperties []UnitProperty
}

func (r *RegisterRequest) validate() (Class, error) {
	if err := validateName("name", r.Name); err != nil {
		return "", err
	}
	class, err := parseRegisterClass(r.Class)
	if err != nil {
		return "", err
	}
	if r.Leader < 0 || r.Leader == 1 {
		return "", invalidArg("leader", "invalid leader PID %d", r.Leader)
	}
	if r.RootDirectory != "" && !validAbsolutePath(r.RootDirectory) {
		return "", invalidArg("rootDirectory", "root directory must be empty or an absolute path without '..'")
	}
	if len(r.NetIf) > MaxNetIf {
		return "", invalidArg("ifIndices", "more than %d network interfaces", MaxNetIf)
	}
	for _, ifi := range r.NetIf {
		if ifi <= 0 || ifi > 1<<31-1 {
			return "", invalidArg("ifIndices", "invalid network interface index %d", ifi)
		}
	}
	if r.VSockCID != nil && !regularVSockCID(*r.VSockCID) {
		return "", invalidArg("vSockCid", "invalid vsock CID %d", *r.VSockCID)
	}
	if r.SSHPrivateKeyPath != "" && !validAbsolutePath(r.SSHPrivateKeyPath) {
		return "", invalidArg("sshPrivateKeyPath", "ssh private key path must be absolute, without '..'")
	}
	if err := validateScope(r.Slice, r.ScopeProperties); err != nil {
		return "", err
	}
	for _, f := range []struct{ field, v string }{
		{"service", r.Service}, {"sshAddress", r.SSHAddress}, {"controlAddress", r.ControlAddress},
	} {
		if !validFreeText(f.v) {
			return "", invalidArg(f.field, "%s contains control characters or is too long", f.field)
		}
	}
	return class, nil
}

// Register adds a machine. It validates everything before touching state, refuses
// a live duplicate name (MachineExists) or a process that already leads a machine
// without disturbing the existing machine, resolves or creates the unit, persists
// the record and announces it.
func (m *Manager) Register(ctx context.Context, c Caller, req RegisterRequest) (MachineInfo, error) {
	leader := req.LeaderRef
	keep := false
	defer func() {
		if !keep && leader != nil {
			leader.Close()
		}
	}()
	class, err := req.validate()
	if err != nil {
		return MachineInfo{}, err
	}
	if leader == nil {
		if leader, err = c.pinLeader(req.Leader); err != nil {
			return MachineInfo{}, err
		}
	}
	if err := req.checkLeader(leader); err != nil {
		return MachineInfo{}, err
	}
	if err := m.authorizeRegister(ctx, c, req, class, leader); err != nil {
		return MachineInfo{}, err
	}

	// Phase 1: reserve the name, the leader and a place in the caller's quota.
	if err := m.reserve(c, req.Name, leader); err != nil {
		return MachineInfo{}, err
	}
	defer func() { m.unreserve(c, req.Name, leader, keep) }()

	// Slow work, unlocked: unit, id maps.
	unit, subgroup, allocated, err := m.resolveUnit(ctx, req, class, leader, c.UID)
	if err != nil {
		return MachineInfo{}, err
	}
	releaseUnit := allocated
	defer func() {
		if releaseUnit {
			m.cfg.Units.Stop(context.Background(), unit)
			m.cfg.Units.Release(unit)
		}
	}()
	var uids, gids proc.IDMap
	if class == ClassContainer {
		// Unverified: publish finds the leader alive or refuses it, and a live
		// process's PID cannot have named another one meanwhile.
		uids, gids, err = proc.ReadIDMapsUnverified(leader)
		if err != nil {
			return MachineInfo{}, invalidArg("leader", "leader process %d exited during registration", leader.PID)
		}
	}
	rec := req.record(c, class, leader, unit, subgroup)
	mc := machineFromRecord(rec, leader)
	mc.allocated = allocated

	// Phase 2: publish.
	info, err := m.publish(mc, rec, uids, gids)
	if err != nil {
		return MachineInfo{}, err
	}
	keep, releaseUnit = true, false
	return info, nil
}

// pinLeader pins the leader a request names: pid, or the caller when pid is 0.
func (c Caller) pinLeader(pid int) (*proc.PidRef, error) {
	var leader *proc.PidRef
	var err error
	if pid == 0 {
		leader, err = c.pidRef()
	} else {
		leader, err = proc.Open(pid)
	}
	if err != nil {
		return nil, leaderOpenError(pid, err)
	}
	return leader, nil
}

// NameLeader sets the leader from one of the request's fields that name it
// (Varlink leader and leaderProcessId, D-Bus LeaderPID and LeaderPIDFD's
// process). An explicit leader is never PID 0, and every field that names one
// must name the same process.
func (r *RegisterRequest) NameLeader(field string, pid int) error {
	if pid <= 0 {
		return invalidArg(field, "invalid leader PID")
	}
	if r.leaderField != "" {
		if r.Leader != pid {
			return invalidArg(field, "%s and %s refer to different processes", r.leaderField, field)
		}
		return nil
	}
	r.Leader, r.leaderField = pid, field
	return nil
}

// checkLeader refuses PID 1 (the caller may be it) and a pinned process that is
// not the one whose pidfd id the request names.
func (r *RegisterRequest) checkLeader(leader *proc.PidRef) error {
	if leader.PID == 1 {
		return invalidArg("leader", "invalid leader PID 1")
	}
	if r.LeaderPIDFDID != 0 && leader.ID != 0 && r.LeaderPIDFDID != leader.ID {
		return invalidArg("leader", "pidfd id %d does not match process %d", r.LeaderPIDFDID, leader.PID)
	}
	return nil
}

// record is the state-file record of the machine the request registers, stamped
// with the current time.
func (r *RegisterRequest) record(c Caller, class Class, leader *proc.PidRef, unit, subgroup string) persist.Record {
	// The supervisor (v262) is the caller when it is not the leader. It is only
	// recorded: it is signalled on explicit request, after re-pinning it.
	var supervisor ProcessID
	if c.PID > 0 && c.PID != leader.PID {
		supervisor = c.processID()
	}
	vsock := VSockCIDAny
	if r.VSockCID != nil {
		vsock = *r.VSockCID
	}
	rt, mono := now()
	return persist.Record{
		Name:              r.Name,
		UID:               c.UID,
		HasUID:            true,
		Unit:              unit,
		Subgroup:          subgroup,
		Service:           r.Service,
		RootDirectory:     r.RootDirectory,
		ID:                r.ID,
		Leader:            leader.PID,
		LeaderPIDFDID:     leader.ID,
		Supervisor:        supervisor.PID,
		SupervisorPIDFDID: supervisor.PIDFDID,
		Class:             string(class),
		Realtime:          rt,
		Monotonic:         mono,
		NetIf:             append([]int(nil), r.NetIf...),
		VSockCID:          vsock,
		SSHAddress:        r.SSHAddress,
		SSHPrivateKeyPath: r.SSHPrivateKeyPath,
		ControlAddress:    r.ControlAddress,
	}
}

// reserve holds a name, a leader and a place in the caller's quota for a
// registration in flight, so that the slow work between the two locked phases
// runs without the lock while duplicates are still refused.
func (m *Manager) reserve(c Caller, name string, leader *proc.PidRef) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkFreeLocked(name, leader); err != nil {
		return err
	}
	if err := m.checkQuotaLocked(c); err != nil {
		return err
	}
	m.pendingNames[name] = true
	m.pendingLeaders[leader.PID] = true
	m.perUID[c.UID]++
	return nil
}

// unreserve ends what reserve began; the quota place stays taken when the
// machine was published (kept).
func (m *Manager) unreserve(c Caller, name string, leader *proc.PidRef, kept bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pendingNames, name)
	delete(m.pendingLeaders, leader.PID)
	if !kept {
		m.releaseQuotaLocked(c.UID)
	}
}

// publish saves rec, the record mc was built from, and enters mc in the
// registry, unless the daemon is stopping, another machine took the unit or the
// leader exited meanwhile. It returns the machine as registered.
func (m *Manager) publish(mc *machine, rec persist.Record, uids, gids proc.IDMap) (MachineInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := mc.name
	if m.closed {
		return MachineInfo{}, fmt.Errorf("daemon is shutting down: %w", ErrNotAvailable)
	}
	if mc.ownsUnit() {
		if other := m.byUnit.get(mc.unit); other != nil {
			return MachineInfo{}, invalidArg("leader", "unit %s already belongs to machine %q", mc.unit, other.name)
		}
	}
	if !mc.leader.Alive() {
		return MachineInfo{}, invalidArg("leader", "leader process %d exited during registration", mc.leader.PID)
	}
	if err := m.state.Save(rec); err != nil {
		return MachineInfo{}, fmt.Errorf("save state of machine %s: %w", name, err)
	}
	m.startLocked(mc, ReasonNone, uids, gids)
	m.logEvent("New machine "+name+".", slog.String("NAME", name), slog.Int("LEADER", mc.leader.PID), slog.String("MESSAGE_ID", "24d8d4452573402496068381a6312df2"))
	return mc.snapshot(), nil
}

// leaderOpenError tells a leader that does not exist (or is not a process: a
// thread id) from our own failure to pin it. Out of fds (EMFILE, ENFILE) or
// memory is the daemon's trouble, not the client's mistake, and keeps its errno.
func leaderOpenError(pid int, err error) error {
	if errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EINVAL) || errors.Is(err, ErrNoSuchProcess) {
		return invalidArg("leader", "leader process %d does not exist", pid)
	}
	return fmt.Errorf("pin leader process %d: %w", pid, err)
}

// checkFreeLocked refuses a name or leader that is taken or being registered.
// m.mu must be held.
func (m *Manager) checkFreeLocked(name string, leader *proc.PidRef) error {
	if m.machines.get(name) != nil || m.pendingNames[name] {
		return fmt.Errorf("machine '%s' already exists: %w", name, ErrMachineExists)
	}
	if other := m.byLeader.get(leader.PID); other != nil && other.leader.Alive() {
		return invalidArg("leader", "process %d already leads machine %q", leader.PID, other.name)
	}
	if m.pendingLeaders[leader.PID] {
		return invalidArg("leader", "process %d is already being registered", leader.PID)
	}
	return nil
}

// checkQuotaLocked refuses a registration that would give an unprivileged uid
// more than MaxMachinesPerUID machines, counting those still in flight. m.mu
// must be held.
func (m *Manager) checkQuotaLocked(c Caller) error {
	max := m.cfg.MaxMachinesPerUID
	if max <= 0 || c.privileged() || m.perUID[c.UID] < max {
		return nil
	}
	return fmt.Errorf("user %d may not register more than %d machines: %w", c.UID, max, ErrTooManyMachines)
}

// releaseQuotaLocked gives back one machine of uid's quota. m.mu must be held.
func (m *Manager) releaseQuotaLocked(uid uint32) {
	if m.perUID[uid] <= 1 {
		delete(m.perUID, uid)
	} else {
		m.perUID[uid]--
	}
}

// resolveUnit creates the machine's scope, or finds the unit its leader lives in
// (unitOfProcess, the reading lookups use). A leader in no unit is fine
// (upstream refuses it): the machine then has no unit.
func (m *Manager) resolveUnit(ctx context.Context, req RegisterRequest, class Class, leader *proc.PidRef, uid uint32) (unit, subgroup string, allocated bool, err error) {
	if req.AllocateUnit {
		if m.cfg.Units == nil {
			return "", "", false, errNotSupportedf("no unit backend to allocate a scope")
		}
		unit = MachineScope(req.Name)
		desc := "Container " + req.Name
		if class == ClassVM {
			desc = "Virtual Machine " + req.Name
		}
		slice := req.Slice
		if slice == "" {
			slice = DefaultMachineSlice
		}
		err := m.cfg.Units.CreateScope(ctx, ScopeRequest{
			Unit: unit, Slice: slice, Description: desc,
			LeaderPID: leader.PID, LeaderPIDFD: leader.FD(), UID: uid,
			Properties: req.ScopeProperties,
		})
		if err != nil {
			return "", "", false, fmt.Errorf("create scope %s: %w: %w", unit, err, ErrUnitAllocationFailed)
		}
		return unit, "", true, nil
	}
	unit, subgroup, err = m.unitOfProcess(leader.PID)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) {
			return "", "", false, invalidArg("leader", "leader process %d does not exist", leader.PID)
		}
		return "", "", false, fmt.Errorf("determine unit of process %d: %w", leader.PID, err)
	}
	// No pidfd check here: Register checks the leader is alive before it
	// publishes, and a live process's PID cannot have been recycled meanwhile.
	return unit, subgroup, false, nil
}

// startLocked indexes a machine (a container with its id maps), announces it
// and watches its leader. m.mu must be held.
func (m *Manager) startLocked(mc *machine, why Reason, uids, gids proc.IDMap) {
	m.machines.set(mc)
	m.byLeader.set(mc)
	if mc.ownsUnit() {
		m.byUnit.set(mc)
	}
	if mc.isContainer() {
		m.ids.add(mc.name, uids, gids)
	}
	m.emitLocked(MachineNew, mc, why)
	m.watchLeader(mc)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}
