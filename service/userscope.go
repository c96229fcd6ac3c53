package service

import "fmt"

// Admits reports whether the instance serves a caller of uid at all. The
// system instance serves everyone; a per-user instance holds one user's
// machines, so it serves that user and root (the privileged callers) and
// nobody else, whatever the mode of its sockets or the policy of its bus.
func (m *Manager) Admits(uid uint32) bool {
	return !m.cfg.UserScope || Privileged(uid)
}

// UserScope reports whether this is a per-user instance.
func (m *Manager) UserScope() bool { return m.cfg.UserScope }

// errOtherUser refuses registrations in a per-user instance by anyone but its
// user, root included: a machine registered there is the user's, and a
// root-owned one would be managed with the user's rights.
func errOtherUser(uid uint32) error {
	return fmt.Errorf("user %d: other users may not register machines with us, sorry: %w", uid, ErrPermissionDenied)
}

// Admit is Admits for the front ends that check per call (D-Bus): nil, or
// ErrPermissionDenied.
func (m *Manager) Admit(c Caller) error {
	if m.Admits(c.UID) {
		return nil
	}
	return fmt.Errorf("user %d: this per-user machined serves only its own user: %w", c.UID, ErrPermissionDenied)
}
