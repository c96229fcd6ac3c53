package varlink

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sort"
	"strings"

	vl "github.com/varlink/go/varlink"

	"github.com/machined-go/machined/service"
)

// Identity is what org.varlink.service.GetInfo reports.
type Identity struct {
	Vendor, Product, Version, URL string
}

// Dispatcher is one Varlink service: a set of interfaces behind one socket. It
// routes messages to varlink/go's dispatch after the checks the library lacks.
type Dispatcher struct {
	id     Identity
	svc    *vl.Service
	ifaces map[string]bool
	names  []string // sorted, as GetInfo lists them
	log    *slog.Logger
}

type iface interface {
	VarlinkDispatch(ctx context.Context, c vl.Call, method string) error
	VarlinkGetName() string
	VarlinkGetDescription() string
}

// NewDispatcher builds a service from interfaces. io.systemd (errors only) and
// org.varlink.service are added, as sd-varlink does.
func NewDispatcher(id Identity, log *slog.Logger, ifaces ...iface) (*Dispatcher, error) {
	svc, err := vl.NewService(id.Vendor, id.Product, id.Version, id.URL)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{id: id, svc: svc, ifaces: map[string]bool{"org.varlink.service": true}, log: log}
	for _, i := range append([]iface{systemdIface{}}, ifaces...) {
		if err := svc.RegisterInterface(i); err != nil {
			return nil, err
		}
		d.ifaces[i.VarlinkGetName()] = true
	}
	for n := range d.ifaces {
		d.names = append(d.names, n)
	}
	sort.Strings(d.names)
	return d, nil
}

// NewMachineDispatcher serves the machine socket: io.systemd.Machine and
// io.systemd.service.
func NewMachineDispatcher(mgr *service.Manager, level *slog.LevelVar, id Identity, log *slog.Logger) (*Dispatcher, error) {
	return NewDispatcher(id, log, &machineIface{mgr: mgr}, &serviceIface{level: level})
}

// Handle is the Server Handler: one complete message at a time.
func (d *Dispatcher) Handle(ctx context.Context, conn *Conn, msg []byte, fds []*os.File) error {
	env, err := parseEnvelope(msg)
	if err != nil {
		for _, f := range fds {
			f.Close()
		}
		d.log.Debug("malformed varlink message", "err", err)
		// The NUL framing is intact, so the connection can go on after the error.
		return conn.WriteRaw(ctx, protocolError)
	}
	if env.Upgrade || (env.More && env.Oneway) {
		for _, f := range fds {
			f.Close()
		}
		return d.replyRaw(ctx, conn, env, NameProtocol, struct{}{})
	}
	dot := strings.LastIndexByte(env.Method, '.')
	if dot <= 0 || !d.ifaces[env.Method[:dot]] {
		for _, f := range fds {
			f.Close()
		}
		return d.replyRaw(ctx, conn, env, NameMethodNotFound, map[string]string{"method": env.Method})
	}
	if env.Method == "org.varlink.service.GetInfo" {
		if err := DecodeParams(env.Parameters); err != nil {
			return d.replyRaw(ctx, conn, env, NameInvalidParameter, map[string]string{"parameter": err.(*ParamError).Name})
		}
		return d.replyRaw(ctx, conn, env, "", struct {
			Vendor     string   `json:"vendor"`
			Product    string   `json:"product"`
			Version    string   `json:"version"`
			URL        string   `json:"url"`
			Interfaces []string `json:"interfaces"`
		}{d.id.Vendor, d.id.Product, d.id.Version, d.id.URL, d.names})
	}
	return d.svc.HandleMessageWithFDs(ctx, conn, msg, fds)
}

// replyRaw answers outside varlink/go: for methods it does not route the way
// systemd does. An empty name sends a reply instead of an error.
func (d *Dispatcher) replyRaw(ctx context.Context, conn *Conn, env envelope, name string, params any) error {
	if env.Oneway {
		return nil
	}
	b, err := json.Marshal(struct {
		Parameters any    `json:"parameters"`
		Error      string `json:"error,omitempty"`
	}{params, name})
	if err != nil {
		return err
	}
	return conn.WriteRaw(ctx, append(b, 0))
}
