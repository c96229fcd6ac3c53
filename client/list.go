package client

import (
	"context"
	"errors"
	"iter"
)

// AcquireMetadata is whether List adds addresses, OS release and UID shift.
type AcquireMetadata string

const (
	MetadataNo AcquireMetadata = "no"
	// MetadataYes fails the call when a field cannot be had.
	MetadataYes AcquireMetadata = "yes"
	// MetadataGraceful leaves out the fields that cannot be had.
	MetadataGraceful AcquireMetadata = "graceful"
)

type listParams struct {
	lookup
	AcquireMetadata AcquireMetadata `json:"acquireMetadata,omitempty"`
}

// Get returns the one machine t names.
func (c *Client) Get(ctx context.Context, t Target, md AcquireMetadata) (Machine, error) {
	var m Machine
	err := c.call(ctx, "io.systemd.Machine.List", listParams{c.lookup(t), md}, &m)
	return m, err
}

// List yields every machine the caller may see, one reply at a time as the
// daemon streams them; after an error it yields nothing more. Breaking out of
// the loop early closes the connection the stream was on. An empty registry
// (upstream answers it with NoSuchMachine) is an empty sequence.
func (c *Client) List(ctx context.Context, md AcquireMetadata) iter.Seq2[Machine, error] {
	return func(yield func(Machine, error) bool) {
		p := listParams{lookup{Interactive: c.interactive}, md}
		first := true
		stream(ctx, c, "io.systemd.Machine.List", p, func(m Machine, err error) bool {
			if first && errors.Is(err, ErrNoSuchMachine) {
				return false
			}
			first = false
			return yield(m, err)
		})
	}
}
