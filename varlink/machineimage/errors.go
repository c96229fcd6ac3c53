package machineimage

import (
	"context"
	"errors"
	"syscall"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// imageErrors is the one translation table from core errors to
// io.systemd.MachineImage replies. Errno failures (EROFS, EBUSY, EEXIST) are
// io.systemd.System with their errno, as upstream answers them.
var imageErrors = []struct {
	kind error
	name string
}{
	{service.ErrNoSuchImage, ifaceName + ".NoSuchImage"},
	{service.ErrTooManyOperations, ifaceName + ".TooManyOperations"},
	{service.ErrNotSupported, ifaceName + ".NotSupported"},
	{service.ErrPermissionDenied, varlink.NamePermissionDenied},
	{service.ErrInteractiveAuth, varlink.NameInteractiveAuth},
}

// replyError answers a call with the error err maps to. Unknown errors become
// io.systemd.System with their errno, or EIO: internal text never reaches clients.
func replyError(ctx context.Context, c *varlink.Call, err error) error {
	var pe *varlink.ParamError
	if errors.As(err, &pe) || errors.Is(err, varlink.ErrMalformed) {
		return varlink.ReplyParamError(ctx, c, err)
	}
	if ia, ok := service.AsInvalidArg(err); ok {
		return c.ReplyInvalidParameter(ctx, ia.Field)
	}
	for _, e := range imageErrors {
		if errors.Is(err, e.kind) {
			return c.ReplyError(ctx, e.name, nil)
		}
	}
	return c.ReplyError(ctx, varlink.NameSystem, varlink.SystemError(errnoOf(err)))
}

// errnoOf is the errno io.systemd.System reports for err.
func errnoOf(err error) syscall.Errno {
	errno := syscall.EIO
	switch {
	case errors.Is(err, service.ErrImageExists):
		errno = syscall.EEXIST
	case errors.As(err, &errno):
	}
	return errno
}
