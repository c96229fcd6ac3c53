package service

import (
	"errors"
	"fmt"
	"os"

	"github.com/machined-go/machined/service/nsenter"
	"github.com/machined-go/machined/service/proc"
)

// loginWithoutBus runs the container's own login program on tty, in all of
// the leader's namespaces. A container with neither a bus nor a login program
// answers as upstream's does without a bus.
func loginWithoutBus(leader *proc.PidRef, owner uint32, tty *os.File) error {
	err := nsenter.StartLogin(leader, owner, tty)
	if errors.Is(err, nsenter.ErrNoProgram) {
		return fmt.Errorf("no system bus and no login program in the container: %w", ErrNoIPC)
	}
	return err
}

// shellWithoutBus runs sh on tty in all of the leader's namespaces, as the
// user the container's own account files name.
func shellWithoutBus(leader *proc.PidRef, owner uint32, sh ShellRequest, tty *os.File) error {
	err := nsenter.StartShell(leader, owner, nsenter.Shell{User: sh.User, Path: sh.Path, Args: sh.Args, Env: sh.Env, TTY: tty})
	switch {
	case errors.Is(err, nsenter.ErrNoSuchUser):
		return fmt.Errorf("%v: %w", err, ErrNoSuchUser)
	case errors.Is(err, nsenter.ErrNoProgram):
		return invalidArg("path", "%v", err)
	case errors.Is(err, nsenter.ErrInvalid):
		return invalidArg("shell", "%v", err)
	}
	return err
}
