package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
	"github.com/machined-go/machined/units/cgroup"
	"github.com/machined-go/machined/units/systemd"
)

// systemdSystemDir exists while systemd is the host's service manager (the
// test sd_booted() makes). MACHINED_SYSTEMD_SYSTEM_DIR replaces it, so that
// the integration tests behave the same on hosts with and without systemd.
var systemdSystemDir = "/run/systemd/system"

// unitHost is what choosing a unit backend asks of the host.
type unitHost interface {
	// systemdRuns reports whether systemd is the host's service manager.
	systemdRuns() bool
	// systemd returns the backend that asks systemd, or why it cannot.
	systemd() (service.Units, error)
	// cgroup returns the built-in cgroup v2 backend.
	cgroup() (service.Units, error)
}

// pickUnits chooses the unit backend. With auto it follows the host, not the
// bus the shim serves: where systemd runs, scopes made behind its back would
// sit in a tree it owns, so systemd must make them, and if it cannot be
// reached the daemon refuses to start rather than guess; elsewhere the
// built-in cgroup backend makes them.
//
// A per-user instance (user) asks the user's service manager on the user bus
// when it is there, and otherwise makes no scopes at all: the cgroup backend
// writes below the root of the hierarchy, which is not the user's, and a
// user's delegated subtree, where one exists, belongs to that manager.
func pickUnits(mode string, user bool, host unitHost, log *slog.Logger) (service.Units, error) {
	switch mode {
	case "none":
		return nil, nil
	case "systemd":
		u, err := host.systemd()
		if err != nil {
			return nil, fmt.Errorf("--units systemd: %w", err)
		}
		return u, nil
	case "cgroup":
		return host.cgroup()
	case "auto":
		if user {
			u, err := host.systemd()
			if err != nil {
				log.Info("no user service manager: allocateUnit is unavailable", "err", err)
				return nil, nil
			}
			return u, nil
		}
		if host.systemdRuns() {
			u, err := host.systemd()
			if err != nil {
				return nil, fmt.Errorf("systemd runs on this host but cannot make machine scopes (%w); --units cgroup or --units none overrides", err)
			}
			return u, nil
		}
		u, err := host.cgroup()
		if err != nil {
			log.Warn("no unit backend: allocateUnit is unavailable", "err", err)
			return nil, nil
		}
		return u, nil
	}
	return nil, fmt.Errorf("unknown --units %q", mode)
}

// realHost is the unitHost of the running daemon. The systemd backend gets a
// bus connection of its own (the "API bus"), never the one the shim serves:
// with --bus none or another bus, systemd is still on the system bus.
type realHost struct {
	ctx context.Context
	o   options
	log *slog.Logger
	// apiBus is the connection to systemd, once dialled; the daemon closes it.
	apiBus *busconn.Conn
}

func (h *realHost) systemdRuns() bool {
	dir := systemdSystemDir
	if d := os.Getenv("MACHINED_SYSTEMD_SYSTEM_DIR"); d != "" {
		dir = d
	}
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}

func (h *realHost) systemd() (service.Units, error) {
	addr := busconn.SystemBusAddress()
	if h.o.user {
		// A per-user instance's scopes belong to the user's service manager.
		addr = userBusAddress()
	}
	// The relay's default fd policy: fds only on replies to our own calls,
	// so no client of the bus can hand godbus fds on this connection.
	conn, err := busconn.Dial(addr, busconn.Config{Logger: h.log})
	if err != nil {
		return nil, fmt.Errorf("connect to D-Bus %s: %w", addr, err)
	}
	actx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	ok := systemd.Available(actx, conn.Conn)
	if !ok && h.o.user && os.Getenv("MANAGERPID") != "" {
		// Started by the user's service manager, which joins the user bus
		// only once the bus runs: our own connection may have started it.
		h.log.Info("waiting for the user's service manager to join the user bus", "bus", addr)
		ok = systemd.WaitAvailable(actx, conn.Conn)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("org.freedesktop.systemd1 is not on the bus %s", addr)
	}
	h.apiBus = conn
	return systemd.New(conn.Conn, h.log), nil
}

func (h *realHost) cgroup() (service.Units, error) {
	root := h.o.cgroupRoot
	if root == "" {
		var err error
		if root, err = proc.Cgroup2Root(); err != nil {
			return nil, err
		}
	}
	b, err := cgroup.New(root, h.log)
	if err != nil {
		return nil, err
	}
	b.StopTimeout = h.o.stopTimeout
	return b, nil
}

// watchAPIBus logs the loss of the connection to systemd: from then on, unit
// operations fail until the daemon is restarted.
func (h *realHost) watchAPIBus(ctx context.Context) {
	if h.apiBus == nil {
		return
	}
	go func() {
		<-h.apiBus.Context().Done()
		if ctx.Err() == nil {
			h.log.Warn("lost the connection to systemd; machine scopes cannot be made or stopped")
		}
	}()
}
