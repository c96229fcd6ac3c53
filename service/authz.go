package service

import (
	"context"
	"fmt"

	"github.com/machined-go/machined/service/proc"
)

// Polkit actions, as named in upstream's policy file.
const (
	ActionRegisterMachine = "org.freedesktop.machine1.register-machine"
	ActionCreateMachine   = "org.freedesktop.machine1.create-machine"
	ActionManageMachines  = "org.freedesktop.machine1.manage-machines"
	ActionInspectMachines = "org.freedesktop.machine1.inspect-machines"
)

// Authorizer asks an external policy authority (polkit) whether an unprivileged
// caller may perform an action. It is optional: without one, only privileged
// callers and a machine's owner pass.
type Authorizer interface {
	// Check returns nil when allowed, ErrInteractiveAuth when the authority
	// wants interactive authentication the caller did not allow, and
	// ErrPermissionDenied otherwise.
	Check(ctx context.Context, c Caller, action string, details map[string]string) error
}

// authorize is the single authorization rule for both transports: privileged
// callers pass; the machine's owner passes where ownerOK (Unregister, Terminate,
// Kill); everyone else needs the Authorizer's consent.
func (m *Manager) authorize(ctx context.Context, c Caller, action string, details func() map[string]string, owner *uint32) error {
	if c.privileged() {
		return nil
	}
	if owner != nil && *owner == c.UID {
		return nil
	}
	if m.cfg.Authorizer != nil {
		return m.cfg.Authorizer.Check(ctx, c, action, details())
	}
	return fmt.Errorf("%s requires privileges: %w", action, ErrPermissionDenied)
}

// authorizeRegister decides whether c may register req with this leader. An
// unprivileged caller may only register a leader it owns, whatever the
// authority says; the authority then decides. Without one, registering stays
// open to owners, but creating a unit does not: a new scope is a cgroup the
// caller's process moves into and gets delegated, which stays with root.
func (m *Manager) authorizeRegister(ctx context.Context, c Caller, req RegisterRequest, class Class, leader *proc.PidRef) error {
	if m.cfg.UserScope && c.UID != ownUID {
		return errOtherUser(c.UID)
	}
	if c.privileged() {
		return nil
	}
	owner, err := leader.UID()
	if err != nil {
		return invalidArg("leader", "leader process %d does not exist", leader.PID)
	}
	if owner != c.UID {
		return fmt.Errorf("only root may register machines for other users: %w", ErrPermissionDenied)
	}
	action := ActionRegisterMachine
	if req.AllocateUnit {
		action = ActionCreateMachine
	}
	switch {
	case m.cfg.Authorizer != nil:
		return m.cfg.Authorizer.Check(ctx, c, action, map[string]string{"name": req.Name, "class": string(class)})
	case req.AllocateUnit:
		return fmt.Errorf("creating a unit requires privileges: %w", ErrPermissionDenied)
	}
	return nil
}
