package service

import (
	"context"
	"fmt"
)

// NoDetailsName is the polkit "name" detail of a request about no one machine.
const NoDetailsName = "n/a"

// Viewer decides, for one request, how much of each machine its caller sees.
// Privileged callers, a machine's owner and callers the Authorizer grants
// ActionInspectMachines see everything; anyone else sees what clients need to
// find and reach a machine (name, id, class, service, unit and subgroup,
// timestamps, network interfaces, vsock CID, state) but not where its files,
// keys and control socket are, which processes lead and supervise it, or who
// registered it. The Authorizer is asked at most once per Viewer, and only when
// a machine the caller does not own comes up. A Viewer is not safe for
// concurrent use.
type Viewer struct {
	m       *Manager
	ctx     context.Context
	c       Caller
	name    string
	asked   bool
	granted error // the Authorizer's answer once asked; nil means granted
}

// Viewer returns the view of caller c for one request; name is the machine the
// request is about, "" for a listing.
func (m *Manager) Viewer(ctx context.Context, c Caller, name string) *Viewer {
	if name == "" {
		name = NoDetailsName
	}
	return &Viewer{m: m, ctx: ctx, c: c, name: name}
}

// check returns nil when the caller may see all of mi.
func (v *Viewer) check(mi MachineInfo) error {
	if v.c.privileged() || mi.UID == v.c.UID && mi.Name != HostName {
		return nil
	}
	if !v.asked {
		v.asked = true
		v.granted = fmt.Errorf("inspecting machines of other users requires privileges: %w", ErrPermissionDenied)
		if v.m.cfg.Authorizer != nil {
			v.granted = v.m.cfg.Authorizer.Check(v.ctx, v.c, ActionInspectMachines, map[string]string{"name": v.name})
		}
	}
	return v.granted
}

// Full reports whether the caller sees all of mi.
func (v *Viewer) Full(mi MachineInfo) bool { return v.check(mi) == nil }

// Inspect is the authorization of requests that reveal what a restricted view
// hides (os-release, SSH details): nil, ErrPermissionDenied or, when the
// authority wants it, ErrInteractiveAuth.
func (v *Viewer) Inspect(mi MachineInfo) error { return v.check(mi) }

// View returns mi as the caller may see it. A restricted view has the hidden
// fields empty (PIDs 0, no UID) and Restricted set, so front ends omit them
// rather than show a made-up value.
func (v *Viewer) View(mi MachineInfo) MachineInfo {
	if v.Full(mi) {
		return mi
	}
	return MachineInfo{
		Name:      mi.Name,
		ID:        mi.ID,
		Service:   mi.Service,
		Class:     mi.Class,
		Unit:      mi.Unit,
		Subgroup:  mi.Subgroup,
		Timestamp: mi.Timestamp,
		NetIf:     mi.NetIf,
		VSockCID:  mi.VSockCID,
		State:     mi.State,
		// Leader, Supervisor, RootDirectory, SSHAddress, SSHPrivateKeyPath,
		// ControlAddress and UID stay empty.
		Restricted: true,
	}
}
