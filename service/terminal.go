package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/machined-go/machined/service/proc"
)

// Terminal is a pseudo terminal opened in a machine: the master side, which
// the caller owns from now on, and the path of the terminal inside the
// machine ("/dev/pts/N").
type Terminal struct {
	Master *os.File
	Path   string
}

// systemBusSocket is where a machine's system bus listens, inside its root.
const systemBusSocket = "run/dbus/system_bus_socket"

// A container without a system bus is still reachable by entering its
// namespaces (service/nsenter, nobus.go). These are its entry points; set to
// nil (as tests do), login and shell into such a container answer ErrNoIPC,
// as upstream's do. noBusShell gets the request checked, with the user filled
// in; a Path "" (and no Args) still asks for the user's login shell, which
// only the container's own user database can name.
var (
	noBusLogin = loginWithoutBus
	noBusShell = shellWithoutBus
)

// OpenPTY allocates a pseudo terminal in the machine, with nothing on it.
func (m *Manager) OpenPTY(ctx context.Context, c Caller, sel Selector) (Terminal, error) {
	mc, mi, err := m.terminalTarget(c, sel)
	if err != nil {
		return Terminal{}, err
	}
	name := mi.Name
	if err := m.authorizeContainerOp(ctx, c, mc, OpOpenPTY, func() map[string]string {
		return map[string]string{"machine": name}
	}); err != nil {
		return Terminal{}, err
	}
	pty, leader, err := m.openPTY(mi)
	leader.Close()
	if err != nil {
		return Terminal{}, err
	}
	return Terminal{Master: pty.Master, Path: pty.Path}, nil
}

// OpenLogin allocates a pseudo terminal in the machine and has the machine's
// service manager start a getty on it (container-getty@N.service).
func (m *Manager) OpenLogin(ctx context.Context, c Caller, sel Selector) (Terminal, error) {
	mc, mi, err := m.terminalTarget(c, sel)
	if err != nil {
		return Terminal{}, err
	}
	name := mi.Name
	if err := m.authorizeContainerOp(ctx, c, mc, OpLogin, func() map[string]string {
		return map[string]string{"machine": name, "verb": "login"}
	}); err != nil {
		return Terminal{}, err
	}
	return m.onTerminal(ctx, mc, mi, func(ctx context.Context, mi MachineInfo, leader *proc.PidRef, pty proc.PTY, bus *os.File) error {
		if bus == nil && leader != nil {
			if noBusLogin == nil {
				return noIPC(mi)
			}
			return withPeer(pty, func(tty *os.File) error { return noBusLogin(leader, mi.UID, tty) })
		}
		return m.cfg.ContainerBus.StartUnit(ctx, bus, "container-getty@"+ptyNumber(pty)+".service")
	})
}

// OpenShell allocates a pseudo terminal in the machine and runs a program on
// it, as a transient service of the machine's service manager
// (container-shell@N.service) with the terminal as its stdio.
func (m *Manager) OpenShell(ctx context.Context, c Caller, sel Selector, req ShellRequest) (Terminal, error) {
	mc, mi, err := m.terminalTarget(c, sel)
	if err != nil {
		return Terminal{}, err
	}
	sh, err := req.resolve()
	if err != nil {
		return Terminal{}, err
	}
	name := mi.Name
	if err := m.authorizeContainerOp(ctx, c, mc, OpShell, func() map[string]string {
		return map[string]string{"machine": name, "user": sh.User, "program": sh.Path, "command_line": strings.Join(sh.Args, " ")}
	}); err != nil {
		return Terminal{}, err
	}
	return m.onTerminal(ctx, mc, mi, func(ctx context.Context, mi MachineInfo, leader *proc.PidRef, pty proc.PTY, bus *os.File) error {
		return withPeer(pty, func(tty *os.File) error {
			if bus == nil && leader != nil {
				if noBusShell == nil {
					return noIPC(mi)
				}
				spawn := sh
				if req.Path == "" {
					spawn.Path, spawn.Args = "", nil
				}
				return noBusShell(leader, mi.UID, spawn, tty)
			}
			return m.cfg.ContainerBus.StartShell(ctx, bus, ShellUnit{
				Name: "container-shell@" + ptyNumber(pty) + ".service",
				User: sh.User, Path: sh.Path, Args: sh.Args, Env: sh.Env,
				TTYPath: pty.Path, TTY: tty,
			})
		})
	})
}

// terminalTarget finds the machine a terminal is asked for: a container or
// the host.
func (m *Manager) terminalTarget(c Caller, sel Selector) (*machine, MachineInfo, error) {
	mc, mi, err := m.selectMachine(c, sel)
	if err != nil {
		return nil, mi, err
	}
	if mi.Class != ClassContainer && mi.Class != ClassHost {
		// Upstream fails the PTY allocation itself with EOPNOTSUPP.
		return nil, mi, errNotSupportedf("operation not supported")
	}
	return mc, mi, nil
}

// onTerminal allocates the terminal of a login or shell and runs start with
// the machine's system bus connected (nil for the host's, which the back end
// reaches itself, and nil with a leader when the container has none). It runs
// as an operation on mc: counted, and cancelled if the machine goes away.
func (m *Manager) onTerminal(ctx context.Context, mc *machine, mi MachineInfo, start func(ctx context.Context, mi MachineInfo, leader *proc.PidRef, pty proc.PTY, bus *os.File) error) (Terminal, error) {
	var t Terminal
	err := m.runOperation(ctx, mc, func(ctx context.Context) error {
		pty, leader, err := m.openPTY(mi)
		defer leader.Close()
		if err != nil {
			return err
		}
		bus, err := m.systemBusOf(mi, leader)
		if err == nil {
			err = start(ctx, mi, leader, pty, bus)
			if mi.Class == ClassHost && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
				// The back end dials the host's bus itself: none there.
				err = noIPC(mi)
			}
		}
		if err != nil {
			pty.Master.Close()
			if ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrNoSuchMachine) {
				return fmt.Errorf("machine %s went away: %w", mi.Name, ErrNoSuchMachine)
			}
			return err
		}
		t = Terminal{Master: pty.Master, Path: pty.Path}
		return nil
	})
	return t, err
}

// openPTY allocates the pseudo terminal: on the host for .host, else in the
// container's own devpts, opened as the container's root (insideRoot). The
// leader, pinned again for the work, is returned for the caller to close (nil
// for .host).
func (m *Manager) openPTY(mi MachineInfo) (proc.PTY, *proc.PidRef, error) {
	if mi.Class == ClassHost {
		pty, err := proc.OpenHostPTY()
		return pty, nil, err
	}
	leader, err := leaderRef(mi)
	if err != nil {
		return proc.PTY{}, nil, err
	}
	pty, err := proc.OpenPTY(leader, m.insideRoot(mi, leader))
	if err != nil {
		return proc.PTY{}, leader, insideErr(mi, err)
	}
	return pty, leader, nil
}

// systemBusOf connects to the container's system bus as its root, or returns
// nil for the host's bus (the back end's own) and for a container without
// one.
func (m *Manager) systemBusOf(mi MachineInfo, leader *proc.PidRef) (*os.File, error) {
	if mi.Class == ClassHost {
		if m.cfg.ContainerBus == nil {
			return nil, noIPC(mi)
		}
		return nil, nil
	}
	if m.cfg.ContainerBus == nil {
		return nil, nil
	}
	bus, err := proc.DialInRoot(leader, systemBusSocket, ownerOf(mi, leader), m.insideRoot(mi, leader))
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, nil
	}
	if err != nil {
		return nil, insideErr(mi, err)
	}
	return bus, nil
}

// insideRoot is whom the daemon acts as inside a container when it must look
// like the container's own root: the host uid and gid its root maps to, for a
// container in a user namespace of its own. Otherwise (no user namespace, or
// one whose root is ours), the machine's owner (ownerOf): root for root's
// machines, and never root for anyone else's.
func (m *Manager) insideRoot(mi MachineInfo, leader *proc.PidRef) proc.Owner {
	owner := ownerOf(mi, leader)
	uids, gids, ok := m.ids.maps(mi.Name)
	if !ok {
		return owner
	}
	uid, uok := uids.ToHost(0)
	gid, gok := gids.ToHost(0)
	if !uok || !gok || uid == 0 {
		return owner
	}
	return proc.Owner{UID: uid, GID: gid}
}

// withPeer opens the terminal itself from the master for use, and closes it
// again: whoever needs it beyond use has its own copy by then.
func withPeer(pty proc.PTY, use func(tty *os.File) error) error {
	tty, err := pty.Peer()
	if err != nil {
		return err
	}
	defer tty.Close()
	return use(tty)
}

func ptyNumber(pty proc.PTY) string { return strings.TrimPrefix(pty.Path, "/dev/pts/") }

func noIPC(mi MachineInfo) error {
	return fmt.Errorf("there is no system bus in container %s: %w", mi.Name, ErrNoIPC)
}

// insideErr reports a failure to act inside a machine: its leader gone
// meanwhile is NotAvailable, anything else keeps its errno.
func insideErr(mi MachineInfo, err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("leader of machine %s is gone: %w", mi.Name, ErrNotAvailable)
	}
	return fmt.Errorf("machine %s: %w", mi.Name, err)
}
