package machine

import (
	"context"
	"errors"
	"syscall"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// machineErrors is the one translation table from core errors to
// io.systemd.Machine replies. Order matters only where kinds wrap each other.
var machineErrors = []struct {
	kind error
	name string
}{
	{service.ErrNoSuchMachine, "io.systemd.Machine.NoSuchMachine"},
	{service.ErrNoMachineForPID, "io.systemd.Machine.NoSuchMachine"},
	{service.ErrMachineExists, "io.systemd.Machine.MachineExists"},
	{service.ErrNoPrivateNetworking, "io.systemd.Machine.NoPrivateNetworking"},
	{service.ErrNoOSRelease, "io.systemd.Machine.NoOSReleaseInformation"},
	{service.ErrNoUIDShift, "io.systemd.Machine.NoUIDShift"},
	{service.ErrNotAvailable, "io.systemd.Machine.NotAvailable"},
	{service.ErrNotSupported, "io.systemd.Machine.NotSupported"},
	{service.ErrNotContainer, "io.systemd.Machine.NotSupported"},
	{service.ErrNoSuchUser, "io.systemd.Machine.NoSuchUser"},
	{service.ErrNoSuchGroup, "io.systemd.Machine.NoSuchGroup"},
	{service.ErrUserInHostRange, "io.systemd.Machine.UserInHostRange"},
	{service.ErrGroupInHostRange, "io.systemd.Machine.GroupInHostRange"},
	{service.ErrPermissionDenied, varlink.NamePermissionDenied},
	{service.ErrInteractiveAuth, varlink.NameInteractiveAuth},
	{service.ErrBacklogExceeded, eventsIfaceName + ".BacklogExceeded"},
	{service.ErrTooManyOperations, "io.systemd.Machine.TooManyOperations"},
	{service.ErrNoIPC, "io.systemd.Machine.NoIPC"},
}

// errorName is the reply name of one of the table's kinds, for replies that carry
// parameters of their own.
func errorName(err error) string {
	for _, e := range machineErrors {
		if errors.Is(err, e.kind) {
			return e.name
		}
	}
	return varlink.NameSystem
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
	for _, e := range machineErrors {
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
	case errors.Is(err, service.ErrNoSuchProcess):
		errno = syscall.ESRCH
	case errors.Is(err, service.ErrTooManyMachines), errors.Is(err, service.ErrTooManyWatches):
		// No io.systemd.Machine error says "limit reached"; ENOBUFS is what
		// sd-bus turns into LimitsExceeded, the D-Bus side's answer.
		errno = syscall.ENOBUFS
	case errors.As(err, &errno):
	}
	return errno
}
