package service

import (
	"context"
	"os"
)

// ContainerBus starts units through the service manager (PID 1) listening on
// a system bus: a container's, over a socket the core has already connected
// as the container's root, or the host's when bus is nil. It is how login and
// shell reach a machine that runs systemd, as upstream does; the back end
// (containerbus/) holds the D-Bus side, the core decides what to start.
type ContainerBus interface {
	// StartUnit starts unit with job mode "replace" and returns once the job
	// is queued. The back end owns bus from the call on.
	StartUnit(ctx context.Context, bus *os.File, unit string) error
	// StartShell starts the transient unit u describes, with job mode "fail",
	// and returns once the job is queued. The back end owns bus from the call
	// on; u.TTY stays the caller's.
	StartShell(ctx context.Context, bus *os.File, u ShellUnit) error
}

// ShellUnit is a shell to run as a transient service on a pseudo terminal.
type ShellUnit struct {
	Name    string   // "container-shell@N.service"
	User    string   // a user name or a numeric uid
	Path    string   // the program, absolute
	Args    []string // its argv, argv[0] included
	Env     []string // KEY=VALUE, added to the service's environment
	TTYPath string   // "/dev/pts/N", as the service manager sees it
	TTY     *os.File // the terminal, the service's stdin, stdout and stderr
}
