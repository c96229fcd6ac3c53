package service

import (
	"context"
	"errors"
	"strings"

	"github.com/machined-go/machined/service/proc"
)

// Machines are resolvable by name: a name resolver (resolved's hook) asks
// which names we answer for and what they resolve to. The answer holds the
// machine's own addresses, never loopback ones (Addresses leaves those out),
// and is open to every caller, as the addresses are on D-Bus
// (GetMachineAddresses) and through nss-mymachines.

// HostNames returns the names we answer for, in order: every registered
// machine but .host, whose name is not one a resolver could be asked for.
func (m *Manager) HostNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hostNamesLocked()
}

func (m *Manager) hostNamesLocked() []string {
	sorted := m.sortedLocked()
	names := make([]string, 0, len(sorted))
	for _, mc := range sorted {
		if !mc.isHost() {
			names = append(names, mc.name)
		}
	}
	return names
}

// WatchHostNames is HostNames and a channel closed at the next change of
// them, taken together so that no change falls between the two. A resolver
// keeps its filter subscription open for as long as it runs: a channel all of
// them share costs each registration one close, whatever their number, and
// nothing queues up for one that does not read.
func (m *Manager) WatchHostNames() ([]string, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.namesChanged == nil {
		m.namesChanged = make(chan struct{})
	}
	return m.hostNamesLocked(), m.namesChanged
}

// hostNamesChangedLocked wakes WatchHostNames' callers. The next channel is
// made when someone asks for it: without a resolver watching, a registration
// costs no allocation here. m.mu must be held.
func (m *Manager) hostNamesChangedLocked() {
	if m.namesChanged != nil {
		close(m.namesChanged)
		m.namesChanged = nil
	}
}

// NameMatch is what the registry knows of a host name.
type NameMatch int

const (
	// NameUnknown: no machine has the name or one of its parent domains; the
	// resolver goes on as if we had not been asked.
	NameUnknown NameMatch = iota
	// NameOfMachine: a machine has this name.
	NameOfMachine
	// NameBelowMachine: no machine has the name but one has a parent domain of
	// it. We answer for the machine's name only, so nothing below exists.
	NameBelowMachine
)

// MatchHostName looks name up among the machines' names (as HostNames lists
// them). A trailing dot, the root, is ignored. The machine is returned for
// NameOfMachine.
func (m *Manager) MatchHostName(name string) (NameMatch, MachineInfo) {
	name = strings.TrimSuffix(name, ".")
	m.mu.Lock()
	defer m.mu.Unlock()
	if mc := m.machines.get(name); mc != nil && !mc.isHost() {
		return NameOfMachine, mc.snapshot()
	}
	for parent := name; ; {
		i := strings.IndexByte(parent, '.')
		if i < 0 {
			return NameUnknown, MachineInfo{}
		}
		parent = parent[i+1:]
		if mc := m.machines.get(parent); mc != nil && !mc.isHost() {
			return NameBelowMachine, MachineInfo{}
		}
	}
}

// HostAddresses are the addresses name resolution gives for machine mi: its
// own (Addresses), or none where it has none we can tell, as for a VM, a
// container that shares the host's network or one whose leader is gone. The
// name still exists then; it just has no address records.
func (m *Manager) HostAddresses(ctx context.Context, mi MachineInfo) ([]proc.Address, error) {
	addrs, err := m.Addresses(ctx, mi)
	switch {
	case err == nil:
		return addrs, nil
	case errors.Is(err, ErrNotSupported), errors.Is(err, ErrNoPrivateNetworking), errors.Is(err, ErrNotAvailable):
		return nil, nil
	}
	return nil, err
}
