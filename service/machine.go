package service

import (
	"github.com/machined-go/machined/service/proc"
)

// Class is what kind of machine a record describes.
type Class string

const (
	ClassContainer Class = "container"
	ClassVM        Class = "vm"
	ClassHost      Class = "host" // only the synthesized .host machine
)

// State is the machine's lifecycle state as shown to clients. Upstream says the
// state machine is not API. Upstream's third state, "opening", lasts while its
// scope job runs; our registrations return only once the unit exists, so no
// machine is ever seen in it.
type State string

const (
	StateRunning State = "running"
	StateClosing State = "closing"
)

// HostName is the name of the synthesized machine that stands for the host.
const HostName = ".host"

// VSockCIDAny is VMADDR_CID_ANY: "no vsock CID known".
const VSockCIDAny = ^uint32(0)

// ProcessID identifies a process the way io.systemd.Machine does: a PID plus, when
// the kernel has pidfs, the pidfd inode id that cannot be recycled, and the boot id
// that scopes it.
type ProcessID struct {
	PID     int
	PIDFDID uint64 // 0 when unknown
	BootID  string // 32 hex chars; set only together with PIDFDID
}

// Timestamp is when a machine started, in µs.
type Timestamp struct {
	Realtime  uint64
	Monotonic uint64
}

// MachineInfo is a value snapshot of one machine. It never aliases core state, so
// front ends may keep and format it without locks.
type MachineInfo struct {
	Name              string
	ID                [16]byte // all zero: no id
	Service           string
	Class             Class
	Leader            ProcessID
	Supervisor        ProcessID // PID 0: none
	RootDirectory     string
	Unit              string
	Subgroup          string
	Timestamp         Timestamp
	NetIf             []int
	VSockCID          uint32 // VSockCIDAny when unknown
	SSHAddress        string
	SSHPrivateKeyPath string
	ControlAddress    string
	UID               uint32 // who registered it; 0 for root and .host
	State             State
	// Restricted marks a Viewer's restricted view: Leader, Supervisor,
	// RootDirectory, SSH and control details and UID are withheld, not empty.
	Restricted bool
}

// HasID reports whether the machine has a non-null UUID.
func (mi MachineInfo) HasID() bool { return mi.ID != [16]byte{} }

// OwnsUnit reports whether the machine owns its whole unit (indexed by unit, gets
// a unit: symlink, is stopped by stopping the unit).
func (mi MachineInfo) OwnsUnit() bool { return mi.Unit != "" && mi.Subgroup == "" }

// machine is the registry's record, one per machine of a registry that may
// hold ten thousand: it keeps what every machine has, and in details what
// most leave empty, so a machine registered with no more than a name and a
// leader pays one small allocation for its record. The name and the unit share
// one allocation (machineFromRecord). The leader's PID and pidfd id live in
// the pinned leader. All fields are guarded by Manager.mu; the pidref is
// closed only by finalize. A container's id maps live in the id index alone,
// which is what reads them.
type machine struct {
	name, unit string
	leader     *proc.PidRef    // nil for .host
	details    *machineDetails // nil when all of them are empty

	realtime, monotonic uint64 // when it started, µs
	supervisorPIDFDID   uint64
	supervisor          int       // PID; 0: none
	exitWatch           exitToken // the exit watcher's token for the leader; 0: none
	uid                 uint32
	class               classKind
	closing             bool
	allocated           bool // we created the unit and must Release it
	finalized           bool
}

// machineDetails are the fields a machine registered with only a name and a
// leader leaves empty (or, for the vsock CID, unknown).
type machineDetails struct {
	service, rootDirectory, subgroup       string
	sshAddress, sshPrivateKeyPath, control string
	netIf                                  []int
	id                                     [16]byte
	vsockCID                               uint32
}

// bare reports whether d holds nothing a machine without details lacks.
func (d *machineDetails) bare() bool {
	return d.service == "" && d.rootDirectory == "" && d.subgroup == "" && d.sshAddress == "" &&
		d.sshPrivateKeyPath == "" && d.control == "" && d.netIf == nil && d.id == [16]byte{} && d.vsockCID == VSockCIDAny
}

// classKind is Class as the record stores it.
type classKind uint8

const (
	kindContainer classKind = iota
	kindVM
	kindHost
)

var classOfKind = [...]Class{kindContainer: ClassContainer, kindVM: ClassVM, kindHost: ClassHost}

func kindOf(c Class) classKind {
	switch c {
	case ClassVM:
		return kindVM
	case ClassHost:
		return kindHost
	}
	return kindContainer
}

func (m *machine) isHost() bool      { return m.class == kindHost }
func (m *machine) isContainer() bool { return m.class == kindContainer }

func (m *machine) service() string {
	if m.details == nil {
		return ""
	}
	return m.details.service
}

func (m *machine) subgroup() string {
	if m.details == nil {
		return ""
	}
	return m.details.subgroup
}

// ownsUnit is MachineInfo.OwnsUnit of the record.
func (m *machine) ownsUnit() bool { return m.unit != "" && m.subgroup() == "" }

func (m *machine) state() State {
	if m.closing {
		return StateClosing
	}
	return StateRunning
}

func (m *machine) leaderID() ProcessID {
	if m.leader == nil {
		return ProcessID{PID: 1} // .host
	}
	return processID(m.leader)
}

func (m *machine) supervisorID() ProcessID {
	p := ProcessID{PID: m.supervisor, PIDFDID: m.supervisorPIDFDID}
	if p.PIDFDID != 0 {
		p.BootID = bootID()
	}
	return p
}

func (m *machine) snapshot() MachineInfo {
	mi := MachineInfo{
		Name:       m.name,
		Class:      classOfKind[m.class],
		Leader:     m.leaderID(),
		Supervisor: m.supervisorID(),
		Unit:       m.unit,
		Timestamp:  Timestamp{Realtime: m.realtime, Monotonic: m.monotonic},
		VSockCID:   VSockCIDAny,
		UID:        m.uid,
		State:      m.state(),
	}
	if d := m.details; d != nil {
		mi.Service, mi.RootDirectory, mi.Subgroup = d.service, d.rootDirectory, d.subgroup
		mi.SSHAddress, mi.SSHPrivateKeyPath, mi.ControlAddress = d.sshAddress, d.sshPrivateKeyPath, d.control
		mi.ID, mi.VSockCID = d.id, d.vsockCID
		if d.netIf != nil {
			mi.NetIf = append([]int(nil), d.netIf...)
		}
	}
	return mi
}
