package varlink

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"

	vl "github.com/varlink/go/varlink"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service"
)

// Generic error names, shared with the userdb front end; varlink/go has reply
// functions for none but InvalidParameter and MethodNotFound.
const (
	NameExpectedMore     = "org.varlink.service.ExpectedMore"
	NamePermissionDenied = "org.varlink.service.PermissionDenied"
	NameInvalidParameter = "org.varlink.service.InvalidParameter"
	NameMethodNotFound   = "org.varlink.service.MethodNotFound"
	NameProtocol         = "io.systemd.Protocol"
	NameSystem           = "io.systemd.System"
	NameInteractiveAuth  = "io.systemd.InteractiveAuthenticationRequired"
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
	{service.ErrTooManyOperations, "io.systemd.Machine.TooManyOperations"},
	{service.ErrPermissionDenied, NamePermissionDenied},
	{service.ErrInteractiveAuth, NameInteractiveAuth},
}

// replyError answers a call with the error err maps to. Unknown errors become
// io.systemd.System with their errno, or EIO: internal text never reaches clients.
func replyError(ctx context.Context, c vl.Call, err error) error {
	var pe *ParamError
	if errors.As(err, &pe) {
		return WriteError(ctx, c, NameInvalidParameter, map[string]string{"parameter": pe.Name})
	}
	if ia, ok := service.AsInvalidArg(err); ok {
		return WriteError(ctx, c, NameInvalidParameter, map[string]string{"parameter": ia.Field})
	}
	for _, e := range machineErrors {
		if errors.Is(err, e.kind) {
			return WriteError(ctx, c, e.name, struct{}{})
		}
	}
	return WriteError(ctx, c, NameSystem, systemError(err))
}

// systemError is io.systemd.System's payload for err.
func systemError(err error) any {
	errno := syscall.EIO
	switch {
	case errors.Is(err, service.ErrNoSuchProcess):
		errno = syscall.ESRCH
	case errors.Is(err, service.ErrTooManyMachines):
		// No io.systemd.Machine error says "limit reached"; ENOBUFS is what
		// sd-bus turns into LimitsExceeded, the D-Bus side's answer.
		errno = syscall.ENOBUFS
	case errors.As(err, &errno):
	}
	return struct {
		Errno     int    `json:"errno"`
		ErrnoName string `json:"errnoName"`
	}{int(errno), unix.ErrnoName(errno)}
}

// WriteError sends an error reply, including the org.varlink.service.* names the
// library refuses to send. Errors always carry "parameters", as sd-varlink's do.
func WriteError(ctx context.Context, c vl.Call, name string, params any) error {
	if c.IsOneway() {
		return nil
	}
	b, err := json.Marshal(struct {
		Parameters any    `json:"parameters"`
		Error      string `json:"error"`
	}{params, name})
	if err != nil {
		return err
	}
	return writeRaw(ctx, c.Conn, append(b, 0))
}

func writeRaw(ctx context.Context, conn vl.ReadWriterContext, b []byte) error {
	if w, ok := conn.(interface {
		WriteRaw(context.Context, []byte) error
	}); ok {
		return w.WriteRaw(ctx, b)
	}
	_, err := conn.Write(ctx, b)
	return err
}
