package machine

import (
	"context"
	_ "embed"
	"log/slog"
	"os"

	"github.com/machined-go/machined/internal/loglevel"
	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

//go:embed idl/io.systemd.service.varlink
var serviceIDL string

// serviceIface serves io.systemd.service: Ping, and log level and environment for
// privileged peers. Reload is declared but, as in upstream machined, not bound.
type serviceIface struct {
	level *slog.LevelVar
}

func (*serviceIface) Name() string        { return "io.systemd.service" }
func (*serviceIface) Description() string { return serviceIDL }

func (s *serviceIface) Serve(ctx context.Context, c *varlink.Call) error {
	switch c.Member {
	case "Ping":
		if err := varlink.DecodeParams(c.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		return replyEmpty(ctx, c)
	case "GetLogLevel":
		if err := varlink.DecodeParams(c.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		return c.Reply(ctx, struct {
			Level int `json:"level"`
		}{loglevel.ToSyslog(s.level.Level())})
	case "SetLogLevel":
		var lvl int64
		var set bool
		if err := varlink.DecodeParams(c.Parameters, varlink.IntField("level", &lvl, &set, false, 0, 7)); err != nil {
			return replyError(ctx, c, err)
		}
		if !privilegedPeer(ctx) {
			return c.ReplyError(ctx, varlink.NamePermissionDenied, struct{}{})
		}
		if set {
			s.level.Set(loglevel.FromSyslog(int(lvl)))
		}
		return replyEmpty(ctx, c)
	case "GetEnvironment":
		if err := varlink.DecodeParams(c.Parameters); err != nil {
			return replyError(ctx, c, err)
		}
		if !privilegedPeer(ctx) {
			return c.ReplyError(ctx, varlink.NamePermissionDenied, struct{}{})
		}
		return c.Reply(ctx, struct {
			Environment []string `json:"environment"`
		}{os.Environ()})
	}
	return c.ReplyMethodNotFound(ctx)
}

func privilegedPeer(ctx context.Context) bool {
	p, ok := varlink.PeerFromContext(ctx)
	return ok && service.Privileged(p.UID)
}
