package client

import "context"

// CopyRequest names what a copy reads and where it writes. Source is inside
// the machine for CopyFrom and on the host for CopyTo; Destination, on the
// other side, defaults to Source. Without Replace an existing file at the
// destination fails the copy; directories are merged either way.
type CopyRequest struct {
	Source      string
	Destination string
	Replace     bool
}

type copyParams struct {
	lookup
	Source      string `json:"source"`
	Destination string `json:"destination,omitempty"`
	Replace     bool   `json:"replace,omitempty"`
}

// CopyFrom copies a file or directory tree out of a container. It returns
// once the copy is done; the daemon ends a copy whose connection closes.
func (c *Client) CopyFrom(ctx context.Context, t Target, r CopyRequest) error {
	return c.call(ctx, "io.systemd.Machine.CopyFrom", copyParams{c.lookup(t), r.Source, r.Destination, r.Replace}, nil)
}

// CopyTo copies a file or directory tree of the host into a container.
func (c *Client) CopyTo(ctx context.Context, t Target, r CopyRequest) error {
	return c.call(ctx, "io.systemd.Machine.CopyTo", copyParams{c.lookup(t), r.Source, r.Destination, r.Replace}, nil)
}

// BindMountRequest is a bind mount of a host path into a container.
// Destination defaults to Source; Mkdir creates it when missing.
type BindMountRequest struct {
	Source      string
	Destination string
	ReadOnly    bool
	Mkdir       bool
}

// BindMount mounts a host path inside a container.
func (c *Client) BindMount(ctx context.Context, t Target, r BindMountRequest) error {
	p := struct {
		lookup
		Source      string `json:"source"`
		Destination string `json:"destination,omitempty"`
		ReadOnly    bool   `json:"readOnly,omitempty"`
		Mkdir       bool   `json:"mkdir,omitempty"`
	}{c.lookup(t), r.Source, r.Destination, r.ReadOnly, r.Mkdir}
	return c.call(ctx, "io.systemd.Machine.BindMount", p, nil)
}
