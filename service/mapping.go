package service

import "fmt"

// HostIDMin is the first id that can belong to a container: lower ids are the host's.
const HostIDMin = 65536

// IDMapping is the answer of MapFrom/MapTo. Pointers are nil when not asked.
type IDMapping struct {
	UID, GID    *uint32
	MachineName string
}

// MapFrom translates ids inside a container to host ids.
func (m *Manager) MapFrom(c Caller, sel Selector, uid, gid *uint32) (IDMapping, error) {
	if err := validIDs(uid, gid); err != nil {
		return IDMapping{}, err
	}
	sel, release := m.resolvePID(c, sel)
	defer release()
	m.mu.Lock()
	mc, err := m.selectLocked(sel)
	var name string
	var class Class
	if err == nil {
		name, class = mc.name, classOfKind[mc.class]
	}
	m.mu.Unlock()
	if err != nil {
		return IDMapping{}, err
	}
	if class != ClassContainer {
		return IDMapping{}, fmt.Errorf("not supported for non-container machines.: %w", ErrNotContainer)
	}
	out := IDMapping{MachineName: name}
	if uid != nil {
		h, _, ok := m.ids.toHost(name, *uid, false)
		if !ok || !ValidID(h) {
			return IDMapping{}, fmt.Errorf("machine '%s' has no matching user mappings: %w", name, ErrNoSuchUser)
		}
		out.UID = &h
	}
	if gid != nil {
		h, _, ok := m.ids.toHost(name, *gid, true)
		if !ok || !ValidID(h) {
			return IDMapping{}, fmt.Errorf("machine '%s' has no matching group mappings: %w", name, ErrNoSuchGroup)
		}
		out.GID = &h
	}
	return out, nil
}

// MapTo finds the container that owns host ids and translates them into it.
func (m *Manager) MapTo(uid, gid *uint32) (IDMapping, error) {
	if err := validIDs(uid, gid); err != nil {
		return IDMapping{}, err
	}
	var out IDMapping
	if uid != nil {
		if *uid < HostIDMin {
			return IDMapping{}, fmt.Errorf("user %d belongs to host UID range: %w", *uid, ErrUserInHostRange)
		}
		name, inner, ok := m.ids.uidOwner(*uid)
		if !ok || !ValidID(inner) {
			return IDMapping{}, fmt.Errorf("no matching user mapping for %d: %w", *uid, ErrNoSuchUser)
		}
		out.UID, out.MachineName = &inner, name
	}
	if gid != nil {
		if *gid < HostIDMin {
			return IDMapping{}, fmt.Errorf("group %d belongs to host GID range: %w", *gid, ErrGroupInHostRange)
		}
		name, inner, ok := m.ids.gidOwner(*gid)
		if !ok || !ValidID(inner) {
			return IDMapping{}, fmt.Errorf("no matching group mapping for %d: %w", *gid, ErrNoSuchGroup)
		}
		if out.MachineName != "" && out.MachineName != name {
			return IDMapping{}, fmt.Errorf("uid and gid belong to different machines: %w", ErrNoSuchMachine)
		}
		out.GID, out.MachineName = &inner, name
	}
	if uid == nil && gid == nil {
		return IDMapping{}, invalidArg("uid", "neither uid nor gid given")
	}
	return out, nil
}

// validIDs refuses an invalid id on either side of a mapping, as an invalid
// argument (upstream: "Invalid user ID"), not as an id that is merely unmapped.
func validIDs(uid, gid *uint32) error {
	if uid != nil && !ValidID(*uid) {
		return invalidArg("uid", "Invalid user ID %d", *uid)
	}
	if gid != nil && !ValidID(*gid) {
		return invalidArg("gid", "Invalid group ID %d", *gid)
	}
	return nil
}
