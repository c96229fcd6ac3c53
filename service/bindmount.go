package service

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/containerfs"
)

// BindMountRequest mounts a host path inside a container. Destination
// defaults to Source.
type BindMountRequest struct {
	Source, Destination string
	ReadOnly            bool
	// Mkdir creates the destination and its parents when missing.
	Mkdir bool
	// Normalized applies the D-Bus path rule (see CopyRequest).
	Normalized bool
}

// BindMount mounts req.Source of the host on req.Destination inside the
// container, with the new mount API (containerfs.BindMount). Upstream refuses
// containers with a user namespace; we give them an idmapped mount through
// the leader's user namespace, so a file owned by host uid N appears inside
// as container uid N, as it would in a container without one. A container
// that shares our mount namespace is refused (EINVAL) as upstream does: the
// mount would land on the host.
//
// The source is opened as the caller and the destination made as the
// machine's owner (operationThreads); only the mount calls run as root.
func (m *Manager) BindMount(ctx context.Context, c Caller, sel Selector, req BindMountRequest) error {
	_, mi, err := m.admitFileOp(ctx, c, sel, OpBindMount, req.Source, &req.Destination, req.Normalized)
	if err != nil {
		return err
	}
	leader, err := leaderRef(mi)
	if err != nil {
		return err
	}
	defer leader.Close()
	same, err := leader.SharesMountNS()
	if err != nil {
		return fmt.Errorf("machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
	}
	if same {
		return fmt.Errorf("machine %s shares our mount namespace, a mount would land on the host: %w", mi.Name, syscall.EINVAL)
	}
	hostNS, err := leader.InHostUserNS()
	if err != nil {
		return fmt.Errorf("machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
	}
	b := containerfs.Bind{Source: req.Source, Destination: req.Destination, ReadOnly: req.ReadOnly, Mkdir: req.Mkdir, UserNS: -1}
	if !hostNS {
		if b.UserNS, err = leader.OpenNS("user"); err != nil {
			return fmt.Errorf("machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
		}
		defer unix.Close(b.UserNS)
	}
	sides, err := openFileOpSides(c, mi, leader)
	if err != nil {
		return err
	}
	defer sides.close()
	err = containerfs.BindMount(leader, sides.root, sides.host, sides.inside, b)
	if errors.Is(err, containerfs.ErrNoIDMap) {
		// The source is what cannot be used: say so, and why.
		return invalidArg("source", "the file system of %s does not support idmapped mounts, which machine %s needs: it has a user namespace of its own", req.Source, mi.Name)
	}
	return err
}
