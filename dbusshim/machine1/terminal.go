package machine1

import (
	"os"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service"
)

// openPTY is OpenMachinePTY and the Machine object's OpenPTY.
func openPTY(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	t, err := c.mgr().OpenPTY(c.ctx, caller, service.Selector{Name: mi.Name})
	if err != nil {
		return nil, err
	}
	fd, err := handOver(t.Master)
	return reply(fd, err, t.Path)
}

// openLogin is OpenMachineLogin and the Machine object's OpenLogin.
func openLogin(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	t, err := c.mgr().OpenLogin(c.ctx, caller, service.Selector{Name: mi.Name})
	if err != nil {
		return nil, err
	}
	fd, err := handOver(t.Master)
	return reply(fd, err, t.Path)
}

// openRootDirectory is OpenMachineRootDirectory and the Machine object's
// OpenRootDirectory.
func openRootDirectory(c *call, mi service.MachineInfo, _ []any) ([]any, error) {
	caller, err := c.callerOf()
	if err != nil {
		return nil, err
	}
	root, err := c.mgr().OpenRootDirectory(c.ctx, caller, service.Selector{Name: mi.Name})
	if err != nil {
		return nil, err
	}
	fd, err := handOver(root)
	if err != nil {
		return nil, err
	}
	return []any{fd}, nil
}

// handOver turns f into the raw fd of a reply, which busconn sends and then
// closes: the *os.File gives it up (a copy, so its finalizer cannot close the
// number under the relay).
func handOver(f *os.File) (dbus.UnixFD, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return -1, err
	}
	return dbus.UnixFD(fd), nil
}

// reply is the (h, s) of the terminal methods.
func reply(fd dbus.UnixFD, err error, path string) ([]any, error) {
	if err != nil {
		return nil, err
	}
	return []any{fd, path}, nil
}
