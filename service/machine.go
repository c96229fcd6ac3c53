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

// machine is the registry's record. All fields are guarded by Manager.mu; the
// pidrefs are closed only by finalize. A container's id maps live in the id
// index alone, which is what reads them: ten thousand machines each carrying
// a second copy of the slice headers grew every record by a size class.
type machine struct {
	info      MachineInfo
	leader    *proc.PidRef // nil for .host
	exitWatch uint32       // the exit watcher's token for the leader; 0: none
	allocated bool         // we created the unit and must Release it
	finalized bool
}

func (m *machine) snapshot() MachineInfo {
	mi := m.info
	if mi.NetIf != nil {
		mi.NetIf = append([]int(nil), mi.NetIf...)
	}
	return mi
}
