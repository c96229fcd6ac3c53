package service

import (
	"context"
	"fmt"
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
