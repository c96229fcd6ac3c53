package service

import (
	"strings"
	"testing"
)

func TestEventFilterValidate(t *testing.T) {
	for _, tc := range []struct {
		f     EventFilter
		field string // "" valid
	}{
		{EventFilter{}, ""},
		{EventFilter{Name: "a", Class: ClassVM, Kinds: []EventKind{MachineNew, MachineRemoved, MachineStateChanged}}, ""},
		{EventFilter{Name: HostName, Class: ClassHost}, ""},
		{EventFilter{Name: "bad/name"}, "name"},
		{EventFilter{Name: strings.Repeat("a", 300)}, "name"},
		{EventFilter{Class: "toaster"}, "class"},
		{EventFilter{Kinds: []EventKind{MachineNew, EventKind(7)}}, "kinds"},
		{EventFilter{Kinds: make([]EventKind, maxFilterKinds)}, ""},
		{EventFilter{Kinds: make([]EventKind, maxFilterKinds+1)}, "kinds"},
	} {
		err := tc.f.Validate()
		ia, ok := AsInvalidArg(err)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", tc.f, err)
		case tc.field != "" && (!ok || ia.Field != tc.field):
			t.Errorf("%+v: %v, want invalid %s", tc.f, err, tc.field)
		}
	}
}

func TestEventFilterPasses(t *testing.T) {
	a := &MachineInfo{Name: "a", Class: ClassVM}
	b := &MachineInfo{Name: "b", Class: ClassContainer}
	f := EventFilter{Name: "a", Kinds: []EventKind{MachineRemoved}}
	if f.Passes(&Event{Kind: MachineNew, Machine: a}) || !f.Passes(&Event{Kind: MachineRemoved, Machine: a}) || f.Passes(&Event{Kind: MachineRemoved, Machine: b}) {
		t.Error("name and kind filter")
	}
	f = EventFilter{Class: ClassContainer}
	if f.Passes(&Event{Kind: MachineNew, Machine: a}) || !f.Passes(&Event{Kind: MachineStateChanged, Machine: b}) {
		t.Error("class filter")
	}
	if (EventFilter{}).Passes(&Event{Kind: MachineNew}) {
		t.Error("an event without a record passed")
	}
}
