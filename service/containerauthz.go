package service

import (
	"context"
	"fmt"
)

// Polkit actions of the operations that act inside a machine, as named in
// upstream's policy file. The host-* variants apply to .host.
const (
	ActionOpenPTY     = "org.freedesktop.machine1.open-pty"
	ActionHostOpenPTY = "org.freedesktop.machine1.host-open-pty"
	ActionLogin       = "org.freedesktop.machine1.login"
	ActionHostLogin   = "org.freedesktop.machine1.host-login"
	ActionShell       = "org.freedesktop.machine1.shell"
	ActionHostShell   = "org.freedesktop.machine1.host-shell"
)

// ContainerOp names an operation that acts inside a machine.
type ContainerOp int

const (
	OpOpenPTY ContainerOp = iota
	OpLogin
	OpShell
	OpBindMount
	OpCopy
	OpOpenRootDirectory
)

// action is the polkit action upstream checks for op on a machine or on .host.
func (op ContainerOp) action(host bool) string {
	switch op {
	case OpOpenPTY:
		return pick(host, ActionHostOpenPTY, ActionOpenPTY)
	case OpLogin:
		return pick(host, ActionHostLogin, ActionLogin)
	case OpShell:
		return pick(host, ActionHostShell, ActionShell)
	}
	return ActionManageMachines
}

// ownerMayAsk says whether the machine's owner passes without polkit's word
// when polkit is there. Upstream lets the owner open terminals into its own
// machines, but not bind, copy or open its root: those stay with
// manage-machines.
func (op ContainerOp) ownerMayAsk() bool {
	return op == OpOpenPTY || op == OpLogin || op == OpShell
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// authorizeContainerOp is the one rule for every operation inside a machine, on
// both transports:
//
//   - privileged callers pass;
//   - a shell into a machine whose leader runs in the host's user namespace is
//     root's alone: that machine's root is the host's root (upstream's rule);
//   - with polkit, the owner passes for terminals, and polkit decides the rest
//     (.host always asks polkit: nobody owns it);
//   - without polkit, only the owner passes, and only into a machine in a user
//     namespace of its own, for the same reason as the shell rule; and not for
//     a bind mount, which into such a machine is idmapped (see BindMount).
//
// details are the polkit details; they are built only when polkit is asked.
func (m *Manager) authorizeContainerOp(ctx context.Context, c Caller, mc *machine, op ContainerOp, details func() map[string]string) error {
	if c.privileged() {
		return nil
	}
	host := mc.isHost()
	owner := !host && mc.uid == c.UID
	if !host && (op == OpShell || m.cfg.Authorizer == nil) {
		hostNS, err := mc.leader.InHostUserNS()
		if err != nil {
			return fmt.Errorf("machine %s: %v: %w", mc.name, err, ErrPermissionDenied)
		}
		if hostNS {
			return fmt.Errorf("only root may act inside machine %s, which runs in the host's user namespace: %w", mc.name, ErrPermissionDenied)
		}
	}
	if m.cfg.Authorizer != nil {
		if owner && op.ownerMayAsk() {
			return nil
		}
		return m.cfg.Authorizer.Check(ctx, c, op.action(host), details())
	}
	if owner && op == OpBindMount {
		// Such a machine's bind mounts are idmapped through its user
		// namespace: host root's files would be its root's, so the owner
		// would get root's rights over whatever it names.
		return fmt.Errorf("only root may bind mount into machine %s: the mount would give its root the rights of the source's owners on the host: %w", mc.name, ErrPermissionDenied)
	}
	if owner {
		return nil
	}
	return fmt.Errorf("%s requires privileges or ownership of the machine: %w", op.action(host), ErrPermissionDenied)
}
