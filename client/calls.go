package client

import (
	"context"
	"os"
)

// KillWhom is which processes Kill signals.
type KillWhom string

const (
	KillLeader     KillWhom = "leader"
	KillSupervisor KillWhom = "supervisor"
	KillAll        KillWhom = "all"
)

// Unregister forgets a machine without stopping any of its processes.
func (c *Client) Unregister(ctx context.Context, t Target) error {
	return c.call(ctx, "io.systemd.Machine.Unregister", c.lookup(t), nil)
}

// Terminate stops a machine; its record goes once the leader has exited.
func (c *Client) Terminate(ctx context.Context, t Target) error {
	return c.call(ctx, "io.systemd.Machine.Terminate", c.lookup(t), nil)
}

// Kill sends signal to the machine's processes that whom names ("" lets the
// daemon choose, which is all of them).
func (c *Client) Kill(ctx context.Context, t Target, whom KillWhom, signal int) error {
	p := struct {
		lookup
		Whom   KillWhom `json:"whom,omitempty"`
		Signal int      `json:"signal"`
	}{c.lookup(t), whom, signal}
	return c.call(ctx, "io.systemd.Machine.Kill", p, nil)
}

// IDs is a user id, a group id or both; nil means not asked or not answered.
type IDs struct {
	UID *uint32 `json:"uid,omitempty"`
	GID *uint32 `json:"gid,omitempty"`
}

// UserID is IDs with only a user id.
func UserID(uid uint32) IDs { return IDs{UID: &uid} }

// GroupID is IDs with only a group id.
func GroupID(gid uint32) IDs { return IDs{GID: &gid} }

// MapFrom translates ids inside a container to the host's.
func (c *Client) MapFrom(ctx context.Context, t Target, ids IDs) (IDs, error) {
	p := struct {
		lookup
		IDs
	}{c.lookup(t), ids}
	var out IDs
	err := c.call(ctx, "io.systemd.Machine.MapFrom", p, &out)
	return out, err
}

// MapTo finds the container that owns host ids and translates them into it; it
// returns the ids inside the container and the container's name.
func (c *Client) MapTo(ctx context.Context, ids IDs) (IDs, string, error) {
	var out struct {
		IDs
		MachineName string `json:"machineName"`
	}
	err := c.call(ctx, "io.systemd.Machine.MapTo", ids, &out)
	return out.IDs, out.MachineName, err
}

// OpenMode is how Open attaches to a machine.
type OpenMode string

const (
	OpenTTY   OpenMode = "tty"
	OpenLogin OpenMode = "login"
	OpenShell OpenMode = "shell"
)

// OpenRequest says what Open starts on the pseudo terminal.
type OpenRequest struct {
	Mode        OpenMode
	User        string
	Path        string
	Args        []string
	Environment []string
}

// Open allocates a pseudo terminal in the machine and returns its master side
// and the path of its slave side inside the machine. The caller owns the file.
func (c *Client) Open(ctx context.Context, t Target, r OpenRequest) (*os.File, string, error) {
	p := struct {
		lookup
		Mode        OpenMode `json:"mode"`
		User        string   `json:"user,omitempty"`
		Path        string   `json:"path,omitempty"`
		Args        []string `json:"args,omitempty"`
		Environment []string `json:"environment,omitempty"`
	}{c.lookup(t), r.Mode, r.User, r.Path, r.Args, r.Environment}
	var out struct {
		PTY     int    `json:"ptyFileDescriptor"`
		PTYPath string `json:"ptyPath"`
	}
	fds, err := c.callFDs(ctx, "io.systemd.Machine.Open", p, &out)
	f, err := pick(fds, out.PTY, "ptyFileDescriptor", err)
	if err != nil {
		return nil, "", err
	}
	return f, out.PTYPath, nil
}

// OpenRootDirectory returns the machine's root directory, opened. The caller
// owns the file.
func (c *Client) OpenRootDirectory(ctx context.Context, t Target) (*os.File, error) {
	var out struct {
		FD int `json:"fileDescriptor"`
	}
	fds, err := c.callFDs(ctx, "io.systemd.Machine.OpenRootDirectory", c.lookup(t), &out)
	return pick(fds, out.FD, "fileDescriptor", err)
}

// pick keeps the fd a reply's field indexes and closes the others; fds sent
// with an error reply are closed too.
func pick(fds []*os.File, index int, field string, err error) (*os.File, error) {
	var keep *os.File
	if err == nil {
		if index < 0 || index >= len(fds) || fds[index] == nil {
			err = &ReplyError{Field: field, Reason: "names no file descriptor of the reply"}
		} else {
			keep = fds[index]
		}
	}
	for _, f := range fds {
		if f != nil && f != keep {
			f.Close()
		}
	}
	return keep, err
}

// ReplyError is a reply the client cannot use.
type ReplyError struct {
	Field, Reason string
}

func (e *ReplyError) Error() string { return "client: reply field " + e.Field + " " + e.Reason }
