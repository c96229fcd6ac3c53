package client

import (
	"context"

	"iter"
)

// EventKind is what an event of Subscribe says.
type EventKind string

const (
	// EventExisting is a machine registered when the subscription began.
	EventExisting EventKind = "existing"
	// EventSnapshotComplete follows the last EventExisting; changes follow it.
	EventSnapshotComplete EventKind = "snapshotComplete"
	EventRegistered       EventKind = "registered"
	EventRemoved          EventKind = "removed"
	EventStateChanged     EventKind = "stateChanged"
)

// RemovalReason is why a machine's record went away.
type RemovalReason string

const (
	RemovedUnregistered RemovalReason = "unregistered"
	RemovedTerminated   RemovalReason = "terminated"
	RemovedLeaderExited RemovalReason = "leaderExited"
	RemovedRestored     RemovalReason = "restored"
	RemovedDropped      RemovalReason = "dropped"
)

// Event is one reply of Subscribe. Machine is nil on EventSnapshotComplete.
type Event struct {
	Kind    EventKind     `json:"event"`
	Machine *Machine      `json:"machine,omitempty"`
	Reason  RemovalReason `json:"reason,omitempty"`
}

// SubscribeOptions filter a subscription; the zero value is everything.
type SubscribeOptions struct {
	// Name limits the stream to one machine.
	Name string
	// Class limits it to machines of one class.
	Class Class
	// Kinds limits the changes to these kinds; the snapshot and its marker
	// always come.
	Kinds []EventKind
}

// ErrBacklogExceeded ends a subscription that fell too far behind the daemon;
// subscribing again starts with a fresh snapshot. The *Error's Parameters carry
// the limit.
var ErrBacklogExceeded error = &sentinel{eventsInterface + ".BacklogExceeded"}

// eventsInterface is machined's own interface, not part of upstream
// systemd-machined: against upstream, Subscribe fails with ErrInterfaceNotFound
// or ErrMethodNotFound.
const eventsInterface = "io.github.machinedgo.MachineEvents"

// Subscribe yields the machines registered now (EventExisting), then
// EventSnapshotComplete, then every change as it happens. The stream has no end
// of its own: it ends when the loop breaks, when ctx ends (the last value is
// then ctx.Err()), or with an error such as ErrBacklogExceeded. The
// subscription has a connection of its own, closed when the stream ends.
func (c *Client) Subscribe(ctx context.Context, o SubscribeOptions) iter.Seq2[Event, error] {
	p := struct {
		Name        string      `json:"name,omitempty"`
		Class       Class       `json:"class,omitempty"`
		Kinds       []EventKind `json:"kinds,omitempty"`
		Interactive bool        `json:"allowInteractiveAuthentication,omitempty"`
	}{Name: o.Name, Class: o.Class, Kinds: o.Kinds, Interactive: c.interactive}
	return func(yield func(Event, error) bool) {
		stream(ctx, c, eventsInterface+".Subscribe", p, func(e Event, err error) bool {
			if err != nil && ctx.Err() != nil {
				err = ctx.Err()
			}
			return yield(e, err)
		})
	}
}
