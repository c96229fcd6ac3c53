package service

import (
	"context"
	"fmt"

	"github.com/machined-go/machined/service/proc"
	"golang.org/x/sys/unix"
)

// fileOps are the operations admitFileOp admits: the "verb" polkit is told,
// and how a machine other than a container is refused.
var fileOps = map[ContainerOp]struct{ verb, refusal string }{
	OpCopy:      {"copy", "copying files is only supported on container machines."},
	OpBindMount: {"bind", "bind mounting is only supported on container machines."},
}

// admitFileOp is what a copy and a bind mount check before they start: the
// machine sel names, which must be a container, the two paths, *dst defaulting
// to src, and the caller's right to op on that machine.
func (m *Manager) admitFileOp(ctx context.Context, c Caller, sel Selector, op ContainerOp, src string, dst *string, normalized bool) (*machine, MachineInfo, error) {
	f := fileOps[op]
	mc, mi, err := m.selectMachine(c, sel)
	if err != nil {
		return nil, mi, err
	}
	if mi.Class != ClassContainer {
		return nil, mi, errNotSupportedf("%s", f.refusal)
	}
	if *dst == "" {
		*dst = src
	}
	if err := checkOperationPaths(src, *dst, normalized); err != nil {
		return nil, mi, err
	}
	details := func() map[string]string {
		return map[string]string{"name": mi.Name, "verb": f.verb, "src": src, "dest": *dst}
	}
	if err := m.authorizeContainerOp(ctx, c, mc, op, details); err != nil {
		return nil, mi, err
	}
	return mc, mi, nil
}

// fileOpSides is what a copy or a bind mount works with: the leader's root
// directory, where the container's paths resolve, and the identities of the
// two sides (operationThreads).
type fileOpSides struct {
	root         int
	inside, host *proc.OwnerThread
}

func openFileOpSides(c Caller, mi MachineInfo, leader *proc.PidRef) (*fileOpSides, error) {
	root, err := leader.OpenRoot()
	if err != nil {
		return nil, fmt.Errorf("machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
	}
	inside, host, err := operationThreads(c, mi, leader)
	if err != nil {
		unix.Close(root)
		return nil, err
	}
	return &fileOpSides{root: root, inside: inside, host: host}, nil
}

// operationThreads returns the identities of an operation: inside the machine
// its owner (ownerOf), on the host the caller, which is the owner itself for
// every unprivileged caller that passes without polkit. A caller whose gid we
// were not told (D-Bus) gets nogroup.
func operationThreads(c Caller, mi MachineInfo, leader *proc.PidRef) (inside, host *proc.OwnerThread, err error) {
	owner := ownerOf(mi, leader)
	inside, err = proc.StartOwnerThread(owner)
	if err != nil {
		return nil, nil, fmt.Errorf("act as owner of machine %s: %w", mi.Name, err)
	}
	var hostID proc.Owner
	switch {
	case c.privileged():
		hostID = proc.Owner{UID: c.UID}
	case c.UID == mi.UID:
		hostID = owner
	default:
		hostID = proc.Owner{UID: c.UID, GID: nogroup}
		if ValidID(c.GID) {
			hostID.GID = c.GID
		}
	}
	host, err = proc.StartOwnerThread(hostID)
	if err != nil {
		inside.Close()
		return nil, nil, fmt.Errorf("act as caller: %w", err)
	}
	return inside, host, nil
}

func (s *fileOpSides) close() {
	s.host.Close()
	s.inside.Close()
	unix.Close(s.root)
}

func checkOperationPaths(src, dst string, normalized bool) error {
	rule := "absolute"
	if normalized {
		rule = "absolute and normalized"
	}
	if !validOperationPath(src, normalized) {
		return invalidArg("source", "source path must be %s.", rule)
	}
	if !validOperationPath(dst, normalized) {
		return invalidArg("destination", "destination path must be %s.", rule)
	}
	return nil
}
