package service

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/machined-go/machined/service/proc"
)

// Metadata is what List's acquireMetadata adds. Fields stay nil when unknown.
type Metadata struct {
	Addresses []proc.Address
	OSRelease []string // "KEY=VALUE"
	UIDShift  *uint32
}

// metadataTimeout bounds the work for one machine, so one stuck guest never
// stalls a listing (upstream issue #4918).
const metadataTimeout = 2 * time.Second

// Metadata gathers addresses, os-release and the uid shift of one machine. With
// graceful, failures drop the field; otherwise the first failure is returned.
func (m *Manager) Metadata(ctx context.Context, mi MachineInfo, graceful bool) (Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	var md Metadata
	keep := func(err error) error {
		if err == nil || graceful {
			return nil
		}
		if errors.Is(err, ErrNotSupported) {
			// What a VM cannot tell is unavailable in a listing, which
			// upstream's List answers with NotAvailable, not NotSupported.
			return fmt.Errorf("%v: %w", err, ErrNotAvailable)
		}
		return err
	}
	addrs, err := m.Addresses(ctx, mi)
	if err == nil {
		md.Addresses = addrs
	} else if err := keep(err); err != nil {
		return Metadata{}, err
	}
	osr, err := m.OSRelease(mi)
	if err == nil {
		md.OSRelease = osr
	} else if err := keep(err); err != nil {
		return Metadata{}, err
	}
	shift, err := m.UIDShift(mi)
	if err == nil {
		md.UIDShift = &shift
	} else if err := keep(err); err != nil {
		return Metadata{}, err
	}
	return md, nil
}

// leaderRef re-pins a machine's leader by PID and checks it is still the same
// process: metadata work runs without the registry lock, after which the machine's
// own pidfd may already be closed.
func leaderRef(mi MachineInfo) (*proc.PidRef, error) {
	ref, err := proc.Open(mi.Leader.PID)
	if err != nil {
		return nil, fmt.Errorf("leader of machine %s is gone: %w", mi.Name, ErrNotAvailable)
	}
	if mi.Leader.PIDFDID != 0 && ref.ID != 0 && ref.ID != mi.Leader.PIDFDID {
		ref.Close()
		return nil, fmt.Errorf("leader of machine %s is gone: %w", mi.Name, ErrNotAvailable)
	}
	return ref, nil
}

// Addresses lists the machine's IP addresses: the host's for .host, the
// container's network namespace otherwise.
func (m *Manager) Addresses(ctx context.Context, mi MachineInfo) ([]proc.Address, error) {
	switch mi.Class {
	case ClassHost:
		return proc.HostAddresses(ctx)
	case ClassContainer:
	default:
		return nil, errNotSupportedf("requesting IP address data is only supported on container machines")
	}
	ref, err := leaderRef(mi)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	shared, err := proc.SharesHostNetNS(ref)
	if err != nil {
		return nil, fmt.Errorf("network namespace of machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
	}
	if shared {
		return nil, fmt.Errorf("machine %s does not use private networking: %w", mi.Name, ErrNoPrivateNetworking)
	}
	addrs, err := proc.Addresses(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("addresses of machine %s: %v: %w", mi.Name, err, ErrNotAvailable)
	}
	return addrs, nil
}

// OSRelease reads the machine's os-release, resolving paths inside its root.
func (m *Manager) OSRelease(mi MachineInfo) ([]string, error) {
	var osr []string
	var err error
	switch mi.Class {
	case ClassHost:
		osr, err = proc.HostOSRelease()
	case ClassContainer:
		ref, rerr := leaderRef(mi)
		if rerr != nil {
			return nil, rerr
		}
		osr, err = proc.OSRelease(ref, ownerOf(mi, ref))
		ref.Close()
	default:
		return nil, errNotSupportedf("requesting OS release data is only supported on container machines")
	}
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("machine %s: %w", mi.Name, ErrNoOSRelease)
	}
	return osr, err
}

// nogroup is the overflow gid, which owns nothing on a sane system.
const nogroup = 65534

// ownerOf is whom reads inside machine mi are done as (proc.AsOwner): the uid
// that registered it. Its gid was not recorded, so it is taken from the leader
// when the owner owns the leader (an unprivileged owner always does: Register
// refuses anything else), since that is a group the owner's process has; else
// nogroup. Either way supplementary groups are dropped: a file readable only
// through one of them stays unread, which fails closed.
func ownerOf(mi MachineInfo, leader *proc.PidRef) proc.Owner {
	if (Caller{UID: mi.UID}).privileged() {
		return proc.Owner{UID: mi.UID} // read as we are: no gid needed
	}
	owner := proc.Owner{UID: mi.UID, GID: nogroup}
	if uid, gid, err := leader.RealIDs(); err == nil && uid == mi.UID {
		owner.GID = gid
	}
	return owner
}

// UIDShift is the base of the machine's user namespace range (see
// proc.IDMap.Shift): 0 for the
// host and for containers without one.
func (m *Manager) UIDShift(mi MachineInfo) (uint32, error) {
	switch mi.Class {
	case ClassHost:
		return 0, nil
	case ClassContainer:
	default:
		return 0, errNotSupportedf("UID/GID shift is only supported on container machines")
	}
	uids, gids, ok := m.ids.maps(mi.Name)
	if !ok {
		return 0, fmt.Errorf("machine %s: %w", mi.Name, ErrNoSuchMachine)
	}
	us, uok := uids.Shift()
	gs, gok := gids.Shift()
	if !uok || !gok || us != gs || !sameMap(uids, gids) {
		return 0, fmt.Errorf("machine %s uses a complex UID/GID mapping, cannot determine shift: %w", mi.Name, ErrNoUIDShift)
	}
	return us, nil
}

func sameMap(a, b proc.IDMap) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
