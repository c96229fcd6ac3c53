package resolvehook

import (
	"context"
	"errors"
	"syscall"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// replyError is the one translation from core errors to replies of this
// interface, which declares no errors of its own: bad parameters are
// InvalidParameter, the watch cap is io.systemd.System ENOBUFS (as on the
// machine socket), anything else io.systemd.System with its errno or EIO.
func replyError(ctx context.Context, c *varlink.Call, err error) error {
	var pe *varlink.ParamError
	if errors.As(err, &pe) || errors.Is(err, varlink.ErrMalformed) {
		return varlink.ReplyParamError(ctx, c, err)
	}
	errno := syscall.EIO
	switch {
	case errors.Is(err, service.ErrTooManyWatches):
		errno = syscall.ENOBUFS
	case errors.As(err, &errno):
	}
	return c.ReplyError(ctx, varlink.NameSystem, varlink.SystemError(errno))
}
