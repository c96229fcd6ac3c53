package machine1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service"
)

// D-Bus error names, as upstream machined and sd-bus answer them.
const (
	ErrNoSuchMachine       = "org.freedesktop.machine1.NoSuchMachine"
	ErrNoSuchImage         = "org.freedesktop.machine1.NoSuchImage"
	ErrFileExists          = "org.freedesktop.DBus.Error.FileExists"
	ErrNoMachineForPID     = "org.freedesktop.machine1.NoMachineForPID"
	ErrMachineExists       = "org.freedesktop.machine1.MachineExists"
	ErrNoPrivateNetworking = "org.freedesktop.machine1.NoPrivateNetworking"
	ErrNoSuchUserMapping   = "org.freedesktop.machine1.NoSuchUserMapping"
	ErrNoSuchGroupMapping  = "org.freedesktop.machine1.NoSuchGroupMapping"
	ErrJobFailed           = "org.freedesktop.systemd1.JobFailed"

	ErrFailed          = "org.freedesktop.DBus.Error.Failed"
	ErrInvalidArgs     = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrNotSupported    = "org.freedesktop.DBus.Error.NotSupported"
	ErrAccessDenied    = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInteractiveAuth = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	ErrLimitsExceeded  = "org.freedesktop.DBus.Error.LimitsExceeded"
	ErrFileNotFound    = "org.freedesktop.DBus.Error.FileNotFound"
	ErrNoSuchProcess   = "org.freedesktop.DBus.Error.UnixProcessIdUnknown"
	ErrTimeout         = "org.freedesktop.DBus.Error.Timeout"
	ErrUnknownObject   = "org.freedesktop.DBus.Error.UnknownObject"
	ErrUnknownMethod   = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrUnknownIface    = "org.freedesktop.DBus.Error.UnknownInterface"
	ErrUnknownProperty = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrPropertyRO      = "org.freedesktop.DBus.Error.PropertyReadOnly"
)

// coreErrors is the one translation table from the core's error kinds to
// D-Bus error names. The message is the core's own text, without the kind's.
var coreErrors = []struct {
	kind error
	name string
}{
	{service.ErrNoSuchMachine, ErrNoSuchMachine},
	{service.ErrNoMachineForPID, ErrNoMachineForPID},
	{service.ErrMachineExists, ErrMachineExists},
	{service.ErrPermissionDenied, ErrAccessDenied},
	{service.ErrInteractiveAuth, ErrInteractiveAuth},
	{service.ErrNotSupported, ErrNotSupported},
	// MapFromMachine* of a VM: upstream answers InvalidArgs, unlike the
	// other container-only methods.
	{service.ErrNotContainer, ErrInvalidArgs},
	{service.ErrNoPrivateNetworking, ErrNoPrivateNetworking},
	// Upstream answers a missing os-release with ENOENT, hence the errno name.
	{service.ErrNoOSRelease, ErrFileNotFound},
	// GetMachineUIDShift of a complex mapping is NotSupported upstream.
	{service.ErrNoUIDShift, ErrNotSupported},
	// Leader gone mid-request, netns unreadable, daemon stopping.
	{service.ErrNotAvailable, ErrFailed},
	{service.ErrNoSuchUser, ErrNoSuchUserMapping},
	{service.ErrNoSuchGroup, ErrNoSuchGroupMapping},
	// Upstream MapTo* refuses host ids with the mapping errors.
	{service.ErrUserInHostRange, ErrNoSuchUserMapping},
	{service.ErrGroupInHostRange, ErrNoSuchGroupMapping},
	{service.ErrNoSuchProcess, ErrNoSuchProcess},
	// The per-user machine cap; the message names the limit.
	{service.ErrTooManyMachines, ErrLimitsExceeded},
	{service.ErrTooManyWatches, ErrLimitsExceeded},
	{service.ErrTooManyOperations, ErrLimitsExceeded},
	{service.ErrUnitAllocationFailed, ErrJobFailed},
	{service.ErrNoSuchImage, ErrNoSuchImage},
	// Upstream answers a taken image name with EEXIST, hence the errno name.
	{service.ErrImageExists, ErrFileExists},
	// Login or shell into a container without a system bus: upstream says
	// NotSupported, "There is no system bus in container NAME."
	{service.ErrNoIPC, ErrNotSupported},
}

func isNoSuchImage(err error) bool { return errors.Is(err, service.ErrNoSuchImage) }

// errnoNames is sd-bus's mapping of negative errno returns to error names;
// any other errno becomes System.Error.<NAME>.
var errnoNames = map[syscall.Errno]string{
	syscall.EPERM:         ErrAccessDenied,
	syscall.EACCES:        ErrAccessDenied,
	syscall.EINVAL:        ErrInvalidArgs,
	syscall.ESRCH:         ErrNoSuchProcess,
	syscall.ENOENT:        ErrFileNotFound,
	syscall.EEXIST:        ErrFileExists,
	syscall.EOPNOTSUPP:    ErrNotSupported,
	syscall.EIO:           "org.freedesktop.DBus.Error.IOError",
	syscall.ENOBUFS:       ErrLimitsExceeded,
	syscall.ETIMEDOUT:     ErrTimeout,
	syscall.EADDRNOTAVAIL: "org.freedesktop.DBus.Error.BadAddress",
	syscall.ECONNRESET:    "org.freedesktop.DBus.Error.Disconnected",
	syscall.ENOMEM:        "org.freedesktop.DBus.Error.NoMemory",
}

// toDBus translates an error for the wire. Errors the shim made itself
// (*dbus.Error) pass unchanged; core kinds go through coreErrors; errno
// failures through errnoNames. Anything else is an internal failure whose
// text stays in our log.
func toDBus(err error) *dbus.Error {
	var de *dbus.Error
	if errors.As(err, &de) {
		return de
	}
	if ia, ok := service.AsInvalidArg(err); ok {
		return newError(ErrInvalidArgs, upperFirst(ia.Reason))
	}
	for _, e := range coreErrors {
		if errors.Is(err, e.kind) {
			return newError(e.name, message(err, e.kind))
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		name, ok := errnoNames[errno]
		if !ok {
			name = "System.Error." + unix.ErrnoName(errno)
		}
		return newError(name, upperFirst(errno.Error()))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(ErrTimeout, "Operation timed out")
	}
	return newError(ErrFailed, "Internal error")
}

func newError(name, msg string) *dbus.Error {
	return &dbus.Error{Name: name, Body: []any{msg}}
}

func errorf(name, format string, args ...any) *dbus.Error {
	return newError(name, fmt.Sprintf(format, args...))
}

// message is the core's text for err without the kind's own suffix:
// "no machine 'x' known: no such machine" -> "No machine 'x' known".
func message(err, kind error) string {
	s := err.Error()
	if t, ok := strings.CutSuffix(s, ": "+kind.Error()); ok {
		s = t
	}
	return upperFirst(s)
}

// upperFirst capitalises a message, unless it starts with a dotted name
// ("org.freedesktop.machine1.manage-machines requires ...").
func upperFirst(s string) string {
	if first, _, _ := strings.Cut(s, " "); strings.Contains(first, ".") {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
