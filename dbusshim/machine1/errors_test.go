package machine1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// Every core error kind has exactly the name upstream answers, with the core's message.
func TestErrorTable(t *testing.T) {
	want := map[error]string{
		service.ErrNoSuchMachine:        "org.freedesktop.machine1.NoSuchMachine",
		service.ErrNoMachineForPID:      "org.freedesktop.machine1.NoMachineForPID",
		service.ErrMachineExists:        "org.freedesktop.machine1.MachineExists",
		service.ErrPermissionDenied:     "org.freedesktop.DBus.Error.AccessDenied",
		service.ErrInteractiveAuth:      "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
		service.ErrNotSupported:         "org.freedesktop.DBus.Error.NotSupported",
		service.ErrNotContainer:         "org.freedesktop.DBus.Error.InvalidArgs",
		service.ErrNoPrivateNetworking:  "org.freedesktop.machine1.NoPrivateNetworking",
		service.ErrNoOSRelease:          "org.freedesktop.DBus.Error.FileNotFound",
		service.ErrNoUIDShift:           "org.freedesktop.DBus.Error.NotSupported",
		service.ErrNotAvailable:         "org.freedesktop.DBus.Error.Failed",
		service.ErrNoSuchUser:           "org.freedesktop.machine1.NoSuchUserMapping",
		service.ErrNoSuchGroup:          "org.freedesktop.machine1.NoSuchGroupMapping",
		service.ErrUserInHostRange:      "org.freedesktop.machine1.NoSuchUserMapping",
		service.ErrGroupInHostRange:     "org.freedesktop.machine1.NoSuchGroupMapping",
		service.ErrNoSuchProcess:        "org.freedesktop.DBus.Error.UnixProcessIdUnknown",
		service.ErrUnitAllocationFailed: "org.freedesktop.systemd1.JobFailed",
		service.ErrTooManyMachines:      "org.freedesktop.DBus.Error.LimitsExceeded",
		service.ErrTooManyWatches:       "org.freedesktop.DBus.Error.LimitsExceeded",
		service.ErrTooManyOperations:    "org.freedesktop.DBus.Error.LimitsExceeded",
		service.ErrNoSuchImage:          "org.freedesktop.machine1.NoSuchImage",
		service.ErrImageExists:          "org.freedesktop.DBus.Error.FileExists",
		service.ErrNoIPC:                "org.freedesktop.DBus.Error.NotSupported",
	}
	if len(want) != len(coreErrors) {
		t.Errorf("table has %d entries, test knows %d kinds", len(coreErrors), len(want))
	}
	for kind, name := range want {
		err := fmt.Errorf("machine 'x' did something: %w", kind)
		de := toDBus(err)
		if de.Name != name {
			t.Errorf("%v -> %s, want %s", kind, de.Name, name)
		}
		if msg := de.Body[0].(string); msg != "Machine 'x' did something" {
			t.Errorf("%v: message %q", kind, msg)
		}
	}
}

func TestErrorTranslation(t *testing.T) {
	for _, c := range []struct {
		err  error
		name string
		msg  string
	}{
		{&service.InvalidArgError{Field: "name", Reason: "invalid machine name \"a_b\""}, ErrInvalidArgs, "Invalid machine name \"a_b\""},
		{fmt.Errorf("save: %w", syscall.ENOSPC), "System.Error.ENOSPC", "No space left on device"},
		{fmt.Errorf("pin leader process 5: %w", syscall.EMFILE), "System.Error.EMFILE", "Too many open files"},
		{fmt.Errorf("open: %w", syscall.EACCES), ErrAccessDenied, "Permission denied"},
		{fmt.Errorf("x: %w", syscall.EEXIST), "org.freedesktop.DBus.Error.FileExists", "File exists"},
		{context.DeadlineExceeded, ErrTimeout, "Operation timed out"},
		{fmt.Errorf("org.freedesktop.machine1.manage-machines requires privileges: %w", service.ErrPermissionDenied), ErrAccessDenied, "org.freedesktop.machine1.manage-machines requires privileges"},
		{errors.New("secret internal detail /etc/shadow"), ErrFailed, "Internal error"},
		{errorf(ErrUnknownObject, "Unknown object '/x'."), ErrUnknownObject, "Unknown object '/x'."},
		{fmt.Errorf("wrapped: %w", &dbus.Error{Name: ErrNoSuchMachine, Body: []any{"No machine"}}), ErrNoSuchMachine, "No machine"},
	} {
		de := toDBus(c.err)
		if de.Name != c.name || de.Body[0] != c.msg {
			t.Errorf("%v -> %s %q, want %s %q", c.err, de.Name, de.Body[0], c.name, c.msg)
		}
		if strings.Contains(fmt.Sprint(de.Body...), "shadow") {
			t.Error("internal text leaked")
		}
	}
}
