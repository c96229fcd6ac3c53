package service

import (
	"errors"
	"fmt"
)

// The closed set of error kinds the core returns. Front ends translate these, and
// only these, with one table each; anything else is an internal failure. Wrap with
// fmt.Errorf("...: %w", ErrX) and test with errors.Is.
//
// Errno failures from the OS keep their syscall.Errno wrapped, so the Varlink front
// end can answer io.systemd.System {errno, errnoName}.
var (
	ErrNoSuchMachine        = errors.New("no such machine")
	ErrNoMachineForPID      = errors.New("no machine for pid")
	ErrMachineExists        = errors.New("machine exists")
	ErrPermissionDenied     = errors.New("permission denied")
	ErrInteractiveAuth      = errors.New("interactive authentication required")
	ErrNotSupported         = errors.New("not supported")
	ErrNotContainer         = errors.New("not a container")
	ErrNoPrivateNetworking  = errors.New("machine does not use private networking")
	ErrNoOSRelease          = errors.New("machine does not contain os-release information")
	ErrNoUIDShift           = errors.New("machine uses a complex uid/gid mapping")
	ErrNotAvailable         = errors.New("information not available")
	ErrNoSuchUser           = errors.New("no such user mapping")
	ErrNoSuchGroup          = errors.New("no such group mapping")
	ErrUserInHostRange      = errors.New("user belongs to the host range")
	ErrGroupInHostRange     = errors.New("group belongs to the host range")
	ErrNoSuchProcess        = errors.New("no such process")
	ErrUnitAllocationFailed = errors.New("unit allocation failed")
	ErrTooManyMachines      = errors.New("too many machines")
	ErrTooManyWatches       = errors.New("too many event subscriptions")
	ErrBacklogExceeded      = errors.New("event backlog exceeded")
	ErrTooManyOperations    = errors.New("too many operations running")
	ErrNoIPC                = errors.New("no system bus in the container")
	ErrNoSuchImage          = errors.New("no such image")
	// ErrImageExists stands for EEXIST: the transports answer it as that errno.
	ErrImageExists = errors.New("image exists")
)

// InvalidArgError says which request field was wrong. Field uses the Varlink
// parameter name ("name", "class", "leader", ...); the D-Bus shim turns Reason into
// its InvalidArgs message.
type InvalidArgError struct {
	Field  string
	Reason string
}

func (e *InvalidArgError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

func invalidArg(field, format string, args ...any) error {
	return &InvalidArgError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// AsInvalidArg returns the InvalidArgError in err's chain, if any.
func AsInvalidArg(err error) (*InvalidArgError, bool) {
	var ia *InvalidArgError
	ok := errors.As(err, &ia)
	return ia, ok
}

func errNotSupportedf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrNotSupported)...)
}
