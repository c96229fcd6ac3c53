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
	"github.com/machined-go/machined/varlink/resolvehook"
)

// varlinkSide is the daemon's Varlink sockets, the machine socket, the userdb
// socket and the resolver hook, and the restore their calls wait for.
type varlinkSide struct {
	o     options
	mgr   *service.Manager
	log   *slog.Logger
	id    varlink.Identity
	ready chan struct{} // closed once the restore is done

	machine, userdb, hook *varlink.Server
	listeners             []varlink.Acceptor
	aliases               []*varlink.Alias
	errc                  chan error // a server that stopped by itself
}

// connEnded is called after each connection of every server has ended.
func newVarlinkSide(o options, mgr *service.Manager, level *slog.LevelVar, log *slog.Logger, connEnded func()) *varlinkSide {
	sv := &varlinkSide{
		o: o, mgr: mgr, log: log, ready: make(chan struct{}), errc: make(chan error, 3),
		id: varlink.Identity{Vendor: "machined-go", Product: "machined (systemd-machined replacement)", Version: version, URL: "https://github.com/machined-go/machined"},
	}
	sv.machine = varlink.NewServer("machine", varlink.AfterReady(sv.ready, machine.New(mgr, level, sv.id, log, machineimage.New(mgr)).Handle), o.limits, log)
	sv.machine.OnConnEnd(connEnded)
	if mgr.UserScope() {
		sv.machine.Admit(mgr.Admits)
	}
	if o.userdbDir != "" && o.userdbDir != "none" {
		sv.userdb = varlink.NewServer("userdb", varlink.AfterReady(sv.ready, userdb.NewDispatcher(mgr, sv.id, log).Handle), o.limits, log)
		// Lookups answer from memory: the accept loop may answer them itself.
		sv.userdb.AnswerOnAcceptLoop(sv.ready)
		sv.userdb.OnConnEnd(connEnded)
	}
	if o.hookDir != "" && o.hookDir != "none" {
		sv.hook = varlink.NewServer("resolve.hook", varlink.AfterReady(sv.ready, resolvehook.New(mgr, sv.id, log).Handle), o.limits, log)
		sv.hook.OnConnEnd(connEnded)
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

// serve binds what activation did not provide and serves the sockets.
func (sv *varlinkSide) serve(ctx context.Context) error {
	if len(sv.listeners) == 0 {
		path := filepath.Join(sv.o.runtimeDir, "systemd", "machine", "io.systemd.Machine")
		mode := os.FileMode(0o666)
		if sv.o.user {
			mode = 0o600
		}
		if _, err := sv.listen(path, mode); err != nil {
			return err
		}
		// Bound by us, so the names the socket unit would link are ours to
		// make too (systemd-machined.socket's Symlinks=).
		sv.alias(path, aliasesOf(sv.o.runtimeDir)...)
	}
	machineL := sv.listeners[0]
	go func() { sv.errc <- sv.machine.Serve(ctx, machineL) }()
	if sv.userdb != nil {
		path := filepath.Join(sv.o.userdbDir, userdb.ServiceName)
		l, err := sv.listen(path, 0o666)
		if err != nil {
			return err
		}
		if err := userdb.SetSocketXattrs(path); err != nil {
			sv.log.Debug("cannot label the userdb socket", "err", err)
		}
		go func() { sv.errc <- sv.userdb.Serve(ctx, l) }()
	}
	if sv.hook != nil {
		// resolved connects as its own unprivileged user.
		l, err := sv.listen(filepath.Join(sv.o.hookDir, resolvehook.SocketName), 0o666)
		if err != nil {
			return err
		}
		go func() { sv.errc <- sv.hook.Serve(ctx, l) }()
	}
	return nil
}

// listen binds a socket of ours and labels it as a Varlink entry point where
// the kernel lets us.
func (sv *varlinkSide) listen(path string, mode os.FileMode) (*varlink.Listener, error) {
	l, err := varlink.Listen(path, mode)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	sv.listeners = append(sv.listeners, l)
	if err := l.Label(); err != nil {
		sv.log.Debug("cannot label the socket as Varlink's", "socket", path, "err", err)
	}
	sv.log.Info("listening", "socket", path)
	return l, nil
}

// aliasesOf are the other names of the machine socket under runtime: the
// MachineImage interface's name beside it, and both interfaces' entries in
// the Varlink registry.
func aliasesOf(runtime string) []string {
	return []string{
		filepath.Join(runtime, "systemd", "machine", "io.systemd.MachineImage"),
		filepath.Join(runtime, "varlink", "registry", "io.systemd.Machine"),
		filepath.Join(runtime, "varlink", "registry", "io.systemd.MachineImage"),
	}
}

// alias links each of names to the socket at target. A name that cannot be
// made is logged: clients of the main name are not affected.
func (sv *varlinkSide) alias(target string, names ...string) {
	for _, name := range names {
		a, err := varlink.NewAlias(name, target)
		if err != nil {
			sv.log.Warn("cannot link the machine socket", "link", name, "err", err)
			continue
		}
		sv.aliases = append(sv.aliases, a)
	}
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
	if sv.hook != nil {
		sv.hook.Shutdown(ctx)
	}
}

// close closes the listeners; a socket file we bound goes with it.
func (sv *varlinkSide) close() {
	for _, a := range sv.aliases {
		a.Close()
	}
	for _, l := range sv.listeners {
		l.Close()
	}
}
