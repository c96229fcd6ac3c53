package varlink

import (
	"context"
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// Error names every front end shares: org.varlink.service's and io.systemd's.
const (
	NameExpectedMore      = "org.varlink.service.ExpectedMore"
	NamePermissionDenied  = "org.varlink.service.PermissionDenied"
	NameInvalidParameter  = "org.varlink.service.InvalidParameter"
	NameMethodNotFound    = "org.varlink.service.MethodNotFound"
	NameInterfaceNotFound = "org.varlink.service.InterfaceNotFound"
	NameProtocol          = "io.systemd.Protocol"
	NameSystem            = "io.systemd.System"
	NameInteractiveAuth   = "io.systemd.InteractiveAuthenticationRequired"
)

// ReplyParamError answers an error of DecodeParams: InvalidParameter naming the
// field of a *ParamError, io.systemd.Protocol for parameters that are not JSON
// (ErrMalformed), io.systemd.System otherwise.
func ReplyParamError(ctx context.Context, c *Call, err error) error {
	var pe *ParamError
	if errors.Is(err, ErrMalformed) {
		return c.ReplyError(ctx, NameProtocol, nil)
	}
	if errors.As(err, &pe) {
		return c.ReplyInvalidParameter(ctx, pe.Name)
	}
	return c.ReplyError(ctx, NameSystem, SystemError(syscall.EIO))
}

// SystemError is io.systemd.System's payload for errno.
func SystemError(errno syscall.Errno) any {
	return struct {
		Errno     int    `json:"errno"`
		ErrnoName string `json:"errnoName"`
	}{int(errno), unix.ErrnoName(errno)}
}
