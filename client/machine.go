package client

import (
	"net/netip"
	"time"
)

// Class is what kind of machine a record describes.
type Class string

const (
	ClassContainer Class = "container"
	ClassVM        Class = "vm"
	// ClassHost is only ever the ".host" machine; it cannot be registered.
	ClassHost Class = "host"
)

// ProcessID names a process; PidfdID, when not 0, pins it against PID reuse
// (the inode number of its pidfd, on kernels whose pidfds live on pidfs).
type ProcessID struct {
	PID     int    `json:"pid"`
	PidfdID uint64 `json:"pidfdId,omitempty"`
	BootID  string `json:"bootId,omitempty"`
}

// Timestamp is a point in time in µs of CLOCK_REALTIME and CLOCK_MONOTONIC.
type Timestamp struct {
	Realtime  uint64 `json:"realtime,omitempty"`
	Monotonic uint64 `json:"monotonic,omitempty"`
}

// Time is the realtime part as a time.Time (the zero Time when absent).
func (t Timestamp) Time() time.Time {
	if t.Realtime == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(t.Realtime))
}

// Address is one IP address of a machine.
type Address struct {
	IfIndex int   `json:"ifindex,omitempty"`
	Family  int   `json:"family"`
	Address []int `json:"address"`
}

// Addr is the address as a netip.Addr; ok is false when it has neither 4 nor
// 16 bytes or a byte is out of range.
func (a Address) Addr() (addr netip.Addr, ok bool) {
	b := make([]byte, len(a.Address))
	for i, v := range a.Address {
		if v < 0 || v > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFromSlice(b)
}

// Machine is one record of List. Fields the daemon does not show the caller
// (another user's machine) or does not have are zero.
type Machine struct {
	Name              string     `json:"name"`
	ID                string     `json:"id,omitempty"`
	Service           string     `json:"service,omitempty"`
	Class             Class      `json:"class"`
	Leader            *ProcessID `json:"leader,omitempty"`
	Supervisor        *ProcessID `json:"supervisor,omitempty"`
	RootDirectory     string     `json:"rootDirectory,omitempty"`
	Unit              string     `json:"unit,omitempty"`
	Timestamp         *Timestamp `json:"timestamp,omitempty"`
	VSockCID          *uint32    `json:"vSockCid,omitempty"`
	SSHAddress        string     `json:"sshAddress,omitempty"`
	SSHPrivateKeyPath string     `json:"sshPrivateKeyPath,omitempty"`
	ControlAddress    string     `json:"controlAddress,omitempty"`
	Addresses         []Address  `json:"addresses,omitempty"`
	OSRelease         []string   `json:"OSRelease,omitempty"`
	UIDShift          *uint32    `json:"UIDShift,omitempty"`
	Subgroup          string     `json:"subgroup,omitempty"`
	UID               *uint32    `json:"UID,omitempty"`
	// State is sent only in events (Subscribe), not by List.
	State MachineState `json:"state,omitempty"`
}

// MachineState is a machine's lifecycle state.
type MachineState string

const (
	StateRunning MachineState = "running"
	// StateClosing lasts from Terminate until the record goes away.
	StateClosing MachineState = "closing"
)

// Target says which machine a call is about: by name, by a process in it, or
// the machine of the calling process.
type Target struct {
	name string
	pid  *ProcessID
}

// ByName is the machine called name (".host" is the host).
func ByName(name string) Target { return Target{name: name} }

// ByPID is the machine the process pid belongs to.
func ByPID(pid int) Target { return Target{pid: &ProcessID{PID: pid}} }

// ByProcess is the machine the process p belongs to, p pinned by its pidfd id.
func ByProcess(p ProcessID) Target { return Target{pid: &p} }

// Self is the machine of the calling process.
func Self() Target { return Target{pid: &ProcessID{}} }

// lookup is the lookup fields every per-machine method shares.
type lookup struct {
	Name        string     `json:"name,omitempty"`
	PID         *ProcessID `json:"pid,omitempty"`
	Interactive bool       `json:"allowInteractiveAuthentication,omitempty"`
}

func (c *Client) lookup(t Target) lookup {
	return lookup{Name: t.name, PID: t.pid, Interactive: c.interactive}
}
