package resolvehook

import (
	"context"
	"errors"
	"syscall"

	"github.com/machined-go/machined/varlink"
)

// replyError is the one translation from errors to replies of this interface,
// which declares no errors of its own: bad parameters are InvalidParameter,
// anything else io.systemd.System with its errno, or EIO (internal text never
// reaches clients).
func replyError(ctx context.Context, c *varlink.Call, err error) error {
	var pe *varlink.ParamError
	if errors.As(err, &pe) || errors.Is(err, varlink.ErrMalformed) {
		return varlink.ReplyParamError(ctx, c, err)
	}
	errno := syscall.EIO
	errors.As(err, &errno)
	return c.ReplyError(ctx, varlink.NameSystem, varlink.SystemError(errno))
}
