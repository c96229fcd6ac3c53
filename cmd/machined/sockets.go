package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/userdb"
	"github.com/machined-go/machined/varlink"
	"github.com/machined-go/machined/varlink/machine"
	"github.com/machined-go/machined/varlink/machineimage"
)

// varlinkSide is the daemon's two Varlink sockets, the machine socket and the
// userdb socket, and the restore their calls wait for.
type varlinkSide struct {
	o     options
	mgr   *service.Manager
	log   *slog.Logger
	id    varlink.Identity
	ready chan struct{} // closed once the restore is done

	machine, userdb *varlink.Server
	listeners       []varlink.Acceptor
	errc            chan error // a server that stopped by itself
	imageLink       string     // the io.systemd.MachineImage link we made
}

func newVarlinkSide(o options, mgr *service.Manager, level *slog.LevelVar, log *slog.Logger) *varlinkSide {
	sv := &varlinkSide{
		o: o, mgr: mgr, log: log, ready: make(chan struct{}), errc: make(chan error, 2),
		id: varlink.Identity{Vendor: "machined-go", Product: "machined (systemd-machined replacement)", Version: version, URL: "https://github.com/machined-go/machined"},
	}
	sv.machine = varlink.NewServer("machine", varlink.AfterReady(sv.ready, machine.New(mgr, level, sv.id, log, machineimage.New(mgr)).Handle), o.limits, log)
	if o.userdbDir != "" && o.userdbDir != "none" {
		sv.userdb = varlink.NewServer("userdb", varlink.AfterReady(sv.ready, userdb.NewDispatcher(mgr, sv.id, log).Handle), o.limits, log)
	}
	return sv
}

// activatedConn takes the sockets systemd passed us: a listening one named
// "varlink" (systemd-machined.socket) replaces our own bind of the machine
// socket; a connected one (varlinkctl exec:) is one client, returned to be
// served alone.
func (sv *varlinkSide) activatedConn() *net.UnixConn {
	for _, a := range varlink.ActivationFiles() {
		c, err := net.FileConn(a.File)
		if !a.Listening {
			if uc, ok := c.(*net.UnixConn); ok && err == nil {
				return uc
			}
			continue
		}
		if c != nil {
			c.Close()
		}
		l, err := net.FileListener(a.File)
		a.File.Close()
		if err != nil {
			continue
		}
		if ul, ok := l.(*net.UnixListener); ok && (a.Name == "varlink" || a.Name == "" || a.Name == "unknown") && len(sv.listeners) == 0 {
			sv.listeners = append(sv.listeners, ul)
			sv.log.Info("using socket-activated Varlink socket")
		} else {
			l.Close()
		}
	}
	return nil
}

// serve binds what activation did not provide and serves both sockets.
func (sv *varlinkSide) serve(ctx context.Context) error {
	if len(sv.listeners) == 0 {
		path := filepath.Join(sv.o.runtimeDir, "systemd", "machine", machineSocketName)
		mode := os.FileMode(0o666)
		if sv.o.user {
			mode = 0o600
		}
		l, err := varlink.Listen(path, mode)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", path, err)
		}
		sv.listeners = append(sv.listeners, l)
		sv.log.Info("listening", "socket", path)
	}
	machineL := sv.listeners[0]
	go func() { sv.errc <- sv.machine.Serve(ctx, machineL) }()
	sv.linkImageSocket()
	if sv.userdb == nil {
		return nil
	}
	path := filepath.Join(sv.o.userdbDir, userdb.ServiceName)
	l, err := varlink.Listen(path, 0o666)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	sv.listeners = append(sv.listeners, l)
	if err := userdb.SetSocketXattrs(path); err != nil {
		sv.log.Debug("cannot label the userdb socket", "err", err)
	}
	go func() { sv.errc <- sv.userdb.Serve(ctx, l) }()
	sv.log.Info("listening", "socket", path)
	return nil
}

// restore loads the machines a previous run left, then lets the calls waiting
// on it through.
func (sv *varlinkSide) restore() {
	restored, dropped := sv.mgr.Restore()
	sv.log.Info("state restored", "machines", restored, "dropped", dropped, "units", sv.mgr.UnitsBackend())
	close(sv.ready)
}

// shutdown cancels every connection and waits a little for them.
func (sv *varlinkSide) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sv.machine.Shutdown(ctx)
	if sv.userdb != nil {
		sv.userdb.Shutdown(ctx)
	}
}

// close closes the listeners; a socket file we bound goes with it, and so
// does the image socket's link.
func (sv *varlinkSide) close() {
	for _, l := range sv.listeners {
		l.Close()
	}
	if sv.imageLink != "" {
		if target, err := os.Readlink(sv.imageLink); err == nil && target == machineSocketName {
			os.Remove(sv.imageLink)
		}
	}
}

const (
	machineSocketName = "io.systemd.Machine"
	imageSocketName   = "io.systemd.MachineImage"
)

// linkImageSocket makes io.systemd.MachineImage beside the machine socket a
// symbolic link to it, as upstream's socket unit does: the machine socket
// serves io.systemd.MachineImage, and clients that find services by interface
// name connect to that path. A link that leads somewhere (the socket unit's)
// stays, and is not ours to remove; a dangling one is replaced; anything else
// (a socket someone else bound) is left alone.
func (sv *varlinkSide) linkImageSocket() {
	link := filepath.Join(sv.o.runtimeDir, "systemd", "machine", imageSocketName)
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			sv.log.Warn("not linking the image socket: something else is there", "path", link)
			return
		}
		if target, _ := os.Readlink(link); target == machineSocketName {
			sv.imageLink = link // ours, from an earlier run
			return
		}
		if _, err := os.Stat(link); err == nil {
			return
		}
		os.Remove(link)
	}
	if err := os.Symlink(machineSocketName, link); err != nil {
		sv.log.Warn("cannot link the image socket", "path", link, "err", err)
		return
	}
	sv.imageLink = link
}
