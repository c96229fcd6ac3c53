package service

// EventFilter chooses what one subscription is told. The zero value passes
// everything.
type EventFilter struct {
	Name  string      // only this machine; "" any
	Class Class       // only this class; "" any
	Kinds []EventKind // only these kinds of change; nil any (the snapshot is never filtered by kind)
}

// maxFilterKinds bounds the kinds list: there are only three kinds, a longer list
// can only repeat them.
const maxFilterKinds = 8

// Validate checks the filter as a request: a name that no machine can have and
// an unknown class are refused rather than silently matching nothing.
func (f EventFilter) Validate() error {
	if f.Name != "" && !ValidLookupName(f.Name) {
		return invalidArg("name", "invalid machine name")
	}
	switch f.Class {
	case "", ClassContainer, ClassVM, ClassHost:
	default:
		return invalidArg("class", "unknown class")
	}
	if len(f.Kinds) > maxFilterKinds {
		return invalidArg("kinds", "more than %d kinds", maxFilterKinds)
	}
	for _, k := range f.Kinds {
		if k != MachineNew && k != MachineRemoved && k != MachineStateChanged {
			return invalidArg("kinds", "unknown kind")
		}
	}
	return nil
}

// Selects reports whether the filter lets mi through, by name and class.
func (f EventFilter) Selects(mi *MachineInfo) bool {
	return (f.Name == "" || f.Name == mi.Name) && (f.Class == "" || f.Class == mi.Class)
}

// Passes reports whether ev is for this subscriber.
func (f EventFilter) Passes(ev *Event) bool {
	if ev.Machine == nil || !f.Selects(ev.Machine) {
		return false
	}
	if f.Kinds == nil {
		return true
	}
	for _, k := range f.Kinds {
		if k == ev.Kind {
			return true
		}
	}
	return false
}
