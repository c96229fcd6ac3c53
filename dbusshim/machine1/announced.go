package machine1

// announced holds the names of the machines the signal forwarder has sent
// MachineNew for and not yet MachineRemoved: what it compares a fresh snapshot
// with when it resynchronizes. A Go map keeps the tables of its largest size
// after its entries are deleted, so a set that once held every machine of a
// burst would keep room for all of them for the daemon's life. Like the
// registry's indexes, the set is copied into a map of its current size once it
// has emptied to a quarter of its size at the last copy: an emptied set holds
// nothing, and a copy moves fewer names than were removed since the last one,
// so the copying costs a constant per removal.
type announced struct {
	names map[string]struct{}
	peak  int // len(names) when names was last allocated or copied, or its largest since
}

func newAnnounced(size int) *announced {
	return &announced{names: make(map[string]struct{}, size), peak: size}
}

func (a *announced) add(name string) {
	a.names[name] = struct{}{}
	a.peak = max(a.peak, len(a.names))
}

func (a *announced) has(name string) bool {
	_, ok := a.names[name]
	return ok
}

func (a *announced) remove(name string) {
	delete(a.names, name)
	if len(a.names) < a.peak/4 {
		a.shrink()
	}
}

// shrink moves the names into a map sized for them, letting the old tables go.
func (a *announced) shrink() {
	names := make(map[string]struct{}, len(a.names))
	for n := range a.names {
		names[n] = struct{}{}
	}
	a.names, a.peak = names, len(names)
}
