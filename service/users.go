package service

import (
	"strconv"
	"strings"
)

// Synthesized users and groups for user-namespaced containers: host id X owned by
// container NAME at inner id N is "vu-NAME-N" / "vg-NAME-N". Everything here reads
// only the id index: no registry lock, no /proc, O(log n).

// UserRecord is one synthesized user or group.
type UserRecord struct {
	Name    string // vu-NAME-N or vg-NAME-N
	ID      uint32 // host uid or gid
	Machine string
	Inner   uint32 // uid or gid inside the container
}

// RealName is the GECOS text upstream uses ("UID 1000 of Container rawhide").
func (r UserRecord) RealName(group bool) string {
	kind := "UID "
	if group {
		kind = "GID "
	}
	// Built by hand: one goes out with every lookup's reply, and Sprintf
	// boxes each argument.
	var buf [96]byte
	b := append(buf[:0], kind...)
	b = strconv.AppendUint(b, uint64(r.Inner), 10)
	b = append(b, " of Container "...)
	b = append(b, r.Machine...)
	return string(b)
}

const (
	userPrefix  = "vu-"
	groupPrefix = "vg-"
)

// UserByUID returns the user synthesized for a host uid.
func (m *Manager) UserByUID(uid uint32) (UserRecord, error) { return m.synthByID(uid, false) }

// GroupByGID returns the group synthesized for a host gid.
func (m *Manager) GroupByGID(gid uint32) (UserRecord, error) { return m.synthByID(gid, true) }

// UserByName resolves "vu-NAME-N".
func (m *Manager) UserByName(name string) (UserRecord, error) { return m.synthByName(name, false) }

// GroupByName resolves "vg-NAME-N".
func (m *Manager) GroupByName(name string) (UserRecord, error) { return m.synthByName(name, true) }

func (m *Manager) synthByID(id uint32, group bool) (UserRecord, error) {
	notFound := m.notFound(group)
	if id < HostIDMin || !ValidID(id) {
		return UserRecord{}, notFound
	}
	var machine string
	var inner uint32
	var ok bool
	if group {
		machine, inner, ok = m.ids.gidOwner(id)
	} else {
		machine, inner, ok = m.ids.uidOwner(id)
	}
	if !ok || !ValidID(inner) {
		return UserRecord{}, notFound
	}
	name := prefix(group) + machine + "-" + strconv.FormatUint(uint64(inner), 10)
	if !validUserName(name) {
		return UserRecord{}, notFound
	}
	return UserRecord{Name: name, ID: id, Machine: machine, Inner: inner}, nil
}

// synthByName enforces the host-range rule too: unlike upstream, "vu-NAME-0" of a
// container without a user namespace does not resolve to host uid 0.
func (m *Manager) synthByName(name string, group bool) (UserRecord, error) {
	notFound := m.notFound(group)
	if !validUserName(name) || !strings.HasPrefix(name, prefix(group)) {
		return UserRecord{}, notFound
	}
	rest := name[len(prefix(group)):]
	dash := strings.LastIndexByte(rest, '-')
	if dash <= 0 {
		return UserRecord{}, notFound
	}
	machine, num := rest[:dash], rest[dash+1:]
	inner, err := strconv.ParseUint(num, 10, 32)
	if err != nil || strconv.FormatUint(inner, 10) != num || !ValidID(uint32(inner)) {
		return UserRecord{}, notFound
	}
	host, _, ok := m.ids.toHost(machine, uint32(inner), group)
	if !ok || host < HostIDMin || !ValidID(host) {
		return UserRecord{}, notFound
	}
	return UserRecord{Name: name, ID: host, Machine: machine, Inner: uint32(inner)}, nil
}

func (m *Manager) notFound(group bool) error {
	if group {
		return ErrNoSuchGroup
	}
	return ErrNoSuchUser
}

func prefix(group bool) string {
	if group {
		return groupPrefix
	}
	return userPrefix
}

// validUserName is the strict user and group name rule: a letter or '_' first,
// then letters, digits, '_' and '-', at most 31 bytes (utmp), not all digits. A
// machine name with a '.' therefore gets no users.
func validUserName(s string) bool {
	if s == "" || len(s) > 31 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}
