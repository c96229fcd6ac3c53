package service

import (
	"os"

	"github.com/machined-go/machined/internal/quicksys"
	"github.com/machined-go/machined/service/proc"
)

// Caller is the transport-neutral identity of whoever asked, taken from the socket
// peer (Varlink SO_PEERCRED/SO_PEERPIDFD) or the bus credentials (D-Bus).
type Caller struct {
	UID   uint32
	GID   uint32
	PID   int // 0 when unknown
	PIDFD int // borrowed pidfd of the caller, -1 when unknown; the core dups it to keep it
	// PIDFDID is the pidfs inode of PIDFD when the transport already knows it
	// (read once per connection); 0 means the core reads it itself.
	PIDFDID uint64
	// Interactive says the client allows interactive authentication (polkit).
	Interactive bool
	// BusName is the D-Bus unique name of the sender ("" for Varlink callers).
	// The core does not use it; an Authorizer may (polkit's system-bus-name subject).
	BusName string
}

// Privileged is upstream's short-cut, for every transport and every check: our
// own uid, or root while we run unprivileged (user scope), may do everything
// without asking polkit.
func Privileged(uid uint32) bool {
	return uid == ownUID || uid == 0
}

func (c Caller) privileged() bool { return Privileged(c.UID) }

// ownUID is our effective uid; it does not change while we run.
var ownUID = uint32(os.Geteuid())

// processID identifies the caller without pinning it.
func (c Caller) processID() ProcessID {
	p := ProcessID{PID: c.PID}
	if c.PIDFDID != 0 {
		p.PIDFDID = c.PIDFDID
	} else {
		p.PIDFDID = quicksys.PidfdID(c.PIDFD)
	}
	if p.PIDFDID != 0 {
		p.BootID = bootID()
	}
	return p
}

// pidRef pins the caller's process: its pidfd when the transport had one (no PID
// recycling window), else its PID.
func (c Caller) pidRef() (*proc.PidRef, error) {
	if c.PIDFD >= 0 {
		if fd, err := quicksys.DupCloexec(c.PIDFD); err == nil {
			adopt := proc.FromFD
			if c.PID > 0 {
				adopt = func(fd int) (*proc.PidRef, error) { return proc.AdoptFD(fd, c.PID) }
			}
			if ref, err := adopt(fd); err == nil {
				return ref, nil
			}
		}
	}
	if c.PID <= 0 {
		return nil, ErrNoSuchProcess
	}
	return proc.Open(c.PID)
}
