package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	vl "github.com/varlink/go/varlink"
)

// Error is an error reply of the daemon: the Varlink error name and its
// parameters as sent.
type Error struct {
	Name       string
	Parameters json.RawMessage
}

func (e *Error) Error() string {
	if len(e.Parameters) == 0 || string(e.Parameters) == "{}" || string(e.Parameters) == "null" {
		return e.Name
	}
	return fmt.Sprintf("%s %s", e.Name, e.Parameters)
}

// Parameter is the parameter an org.varlink.service.InvalidParameter names.
func (e *Error) Parameter() string {
	var p struct {
		Parameter string `json:"parameter"`
	}
	json.Unmarshal(e.Parameters, &p)
	return p.Parameter
}

// Errno is the errno of an io.systemd.System error, or 0.
func (e *Error) Errno() syscall.Errno {
	if e.Name != nameSystem {
		return 0
	}
	var p struct {
		Errno int `json:"errno"`
	}
	json.Unmarshal(e.Parameters, &p)
	return syscall.Errno(p.Errno)
}

// Is matches the sentinel of e's name, and for io.systemd.System the
// syscall.Errno it carries.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *sentinel:
		return t.name == e.Name
	case syscall.Errno:
		return t != 0 && e.Errno() == t
	}
	return false
}

// sentinel is an error name to match with errors.Is.
type sentinel struct{ name string }

func (s *sentinel) Error() string { return s.name }

const nameSystem = "io.systemd.System"

// The errors a reply can match. Each stands for one Varlink error name.
var (
	ErrNoSuchMachine          error = &sentinel{"io.systemd.Machine.NoSuchMachine"}
	ErrMachineExists          error = &sentinel{"io.systemd.Machine.MachineExists"}
	ErrNoPrivateNetworking    error = &sentinel{"io.systemd.Machine.NoPrivateNetworking"}
	ErrNoOSReleaseInformation error = &sentinel{"io.systemd.Machine.NoOSReleaseInformation"}
	ErrNoUIDShift             error = &sentinel{"io.systemd.Machine.NoUIDShift"}
	ErrNotAvailable           error = &sentinel{"io.systemd.Machine.NotAvailable"}
	ErrNotSupported           error = &sentinel{"io.systemd.Machine.NotSupported"}
	ErrNoIPC                  error = &sentinel{"io.systemd.Machine.NoIPC"}
	ErrNoSuchUser             error = &sentinel{"io.systemd.Machine.NoSuchUser"}
	ErrNoSuchGroup            error = &sentinel{"io.systemd.Machine.NoSuchGroup"}
	ErrUserInHostRange        error = &sentinel{"io.systemd.Machine.UserInHostRange"}
	ErrGroupInHostRange       error = &sentinel{"io.systemd.Machine.GroupInHostRange"}

	ErrPermissionDenied        error = &sentinel{"org.varlink.service.PermissionDenied"}
	ErrExpectedMore            error = &sentinel{"org.varlink.service.ExpectedMore"}
	ErrInvalidParameter        error = &sentinel{"org.varlink.service.InvalidParameter"}
	ErrMethodNotFound          error = &sentinel{"org.varlink.service.MethodNotFound"}
	ErrMethodNotImplemented    error = &sentinel{"org.varlink.service.MethodNotImplemented"}
	ErrInterfaceNotFound       error = &sentinel{"org.varlink.service.InterfaceNotFound"}
	ErrInteractiveAuthRequired error = &sentinel{"io.systemd.InteractiveAuthenticationRequired"}
	ErrProtocol                error = &sentinel{"io.systemd.Protocol"}
	ErrSystem                  error = &sentinel{nameSystem}
)

// convert turns varlink/go's error values into *Error; transport errors pass
// through unchanged.
func convert(err error) error {
	if err == nil {
		return nil
	}
	var ve *vl.Error
	if errors.As(err, &ve) {
		e := &Error{Name: ve.Name}
		if raw, ok := ve.Parameters.(*json.RawMessage); ok && raw != nil {
			e.Parameters = *raw
		}
		return e
	}
	// varlink/go decodes the org.varlink.service errors into types of its own.
	var (
		ip  *vl.InvalidParameter
		mnf *vl.MethodNotFound
		mni *vl.MethodNotImplemented
		inf *vl.InterfaceNotFound
	)
	switch {
	case errors.As(err, &ip):
		return withParam("org.varlink.service.InvalidParameter", "parameter", ip.Parameter)
	case errors.As(err, &mnf):
		return withParam("org.varlink.service.MethodNotFound", "method", mnf.Method)
	case errors.As(err, &mni):
		return withParam("org.varlink.service.MethodNotImplemented", "method", mni.Method)
	case errors.As(err, &inf):
		return withParam("org.varlink.service.InterfaceNotFound", "interface", inf.Interface)
	}
	return err
}

func withParam(name, key, value string) *Error {
	b, _ := json.Marshal(map[string]string{key: value})
	return &Error{Name: name, Parameters: b}
}
