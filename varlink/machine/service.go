package varlink

import (
	"context"
	_ "embed"
	"log/slog"
	"os"

	"github.com/machined-go/machined/internal/loglevel"
	"github.com/machined-go/machined/service"
	vl "github.com/varlink/go/varlink"
)

//go:embed idl/io.systemd.service.varlink
var serviceIDL string

//go:embed idl/io.systemd.varlink
var systemdIDL string

// serviceIface serves io.systemd.service: Ping, and log level and environment for
// privileged peers. Reload is declared but, as in upstream machined, not bound.
type serviceIface struct {
	level *slog.LevelVar
}

func (*serviceIface) VarlinkGetName() string        { return "io.systemd.service" }
func (*serviceIface) VarlinkGetDescription() string { return serviceIDL }

func (s *serviceIface) VarlinkDispatch(ctx context.Context, c vl.Call, method string) error {
	switch method {
	case "Ping":
		if err := DecodeParams(c.In.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		return replyEmpty(ctx, c)
	case "GetLogLevel":
		if err := DecodeParams(c.In.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		return c.Reply(ctx, struct {
			Level int `json:"level"`
		}{loglevel.ToSyslog(s.level.Level())})
	case "SetLogLevel":
		var lvl int64
		var set bool
		if err := DecodeParams(c.In.Parameters, IntField("level", &lvl, &set, false, 0, 7)); err != nil {
			return replyError(ctx, c, err)
		}
		if !privilegedPeer(ctx) {
			return WriteError(ctx, c, NamePermissionDenied, struct{}{})
		}
		if set {
			s.level.Set(loglevel.FromSyslog(int(lvl)))
		}
		return replyEmpty(ctx, c)
	case "GetEnvironment":
		if err := DecodeParams(c.In.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		if !privilegedPeer(ctx) {
			return WriteError(ctx, c, NamePermissionDenied, struct{}{})
		}
		return c.Reply(ctx, struct {
			Environment []string `json:"environment"`
		}{os.Environ()})
	}
	return WriteError(ctx, c, NameMethodNotFound, map[string]string{"method": c.In.Method})
}

func privilegedPeer(ctx context.Context) bool {
	p, ok := PeerFromContext(ctx)
	return ok && service.Privileged(p.UID)
}

// systemdIface declares the io.systemd errors; it has no methods.
type systemdIface struct{}

func (systemdIface) VarlinkGetName() string        { return "io.systemd" }
func (systemdIface) VarlinkGetDescription() string { return systemdIDL }
func (systemdIface) VarlinkDispatch(ctx context.Context, c vl.Call, method string) error {
	return WriteError(ctx, c, NameMethodNotFound, map[string]string{"method": c.In.Method})
}
