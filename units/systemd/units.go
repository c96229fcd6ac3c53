package systemd

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
)

// UnitOfPID implements service.Units with GetUnitByPID and the unit's Id. The
// subgroup is the process's cgroup path below the unit's ControlGroup. When the
// manager cannot answer, the unit is derived from /proc/PID/cgroup instead. A
// process that sits in a slice (no unit of its own) gives "".
func (c *Client) UnitOfPID(pid int) (unit, subgroup string, err error) {
	if pid <= 0 {
		return "", "", fmt.Errorf("invalid pid %d: %w", pid, syscall.EINVAL)
	}
	ctx := context.Background()
	var path dbus.ObjectPath
	err = c.call(ctx, "GetUnitByPID", uint32(pid)).Store(&path)
	if err == nil {
		unit, err = c.getString(ctx, path, unitIf, "Id")
	}
	if err != nil {
		c.log.Debug("service manager could not tell the unit of a process, reading its cgroup", "pid", pid, "err", err)
		cg, cerr := c.readCgroup(pid)
		if cerr != nil {
			return "", "", cerr
		}
		unit, subgroup = proc.UnitFromCgroupPath(cg)
		return unit, subgroup, nil
	}
	if strings.HasSuffix(unit, ".slice") {
		return "", "", nil
	}

	cg, err := c.readCgroup(pid)
	if err != nil {
		return "", "", err
	}
	if iface := typeInterface(unit); iface != "" {
		if top, err := c.getString(ctx, path, iface, "ControlGroup"); err == nil && top != "" {
			if cg == top {
				return unit, "", nil
			}
			if rest, ok := strings.CutPrefix(cg, strings.TrimSuffix(top, "/")+"/"); ok {
				return unit, rest, nil
			}
		}
	}
	// No usable ControlGroup: the path itself says where the unit's cgroup ends.
	if u, sub := proc.UnitFromCgroupPath(cg); u == unit {
		return unit, sub, nil
	}
	return unit, "", nil
}

// typeInterface returns the unit-type interface carrying ControlGroup.
func typeInterface(unit string) string {
	for suffix, iface := range map[string]string{
		".scope":   "org.freedesktop.systemd1.Scope",
		".service": "org.freedesktop.systemd1.Service",
		".socket":  "org.freedesktop.systemd1.Socket",
		".mount":   "org.freedesktop.systemd1.Mount",
		".swap":    "org.freedesktop.systemd1.Swap",
		".slice":   "org.freedesktop.systemd1.Slice",
	} {
		if strings.HasSuffix(unit, suffix) {
			return iface
		}
	}
	return ""
}

// Stop implements service.Units with StopUnit(unit, "fail"). A unit the manager
// does not know (any more) is already stopped.
func (c *Client) Stop(ctx context.Context, unit string) error {
	var job dbus.ObjectPath
	err := c.call(ctx, "StopUnit", unit, "fail").Store(&job)
	if err != nil && !hasName(err, errNoSuchUnit, errLoadFailed) {
		return fmt.Errorf("stop unit %s: %w", unit, err)
	}
	return nil
}

// Kill implements service.Units with KillUnit(unit, "all", sig), or
// KillUnitSubgroup(unit, "cgroup", subgroup, sig) for a part of the unit.
func (c *Client) Kill(ctx context.Context, unit, subgroup string, sig syscall.Signal) error {
	var err error
	if subgroup == "" || subgroup == "/" {
		err = c.call(ctx, "KillUnit", unit, "all", int32(sig)).Store()
	} else {
		err = c.call(ctx, "KillUnitSubgroup", unit, "cgroup", subgroup, int32(sig)).Store()
	}
	if hasName(err, errNoSuchUnit, errLoadFailed) {
		return fmt.Errorf("kill unit %s: %v: %w", unit, err, service.ErrNoSuchProcess)
	}
	if err != nil {
		return fmt.Errorf("kill unit %s: %w", unit, err)
	}
	return nil
}

// Release implements service.Units: UnrefUnit drops the reference AddRef took
// when the scope was created. It runs in the background; failures are logged.
func (c *Client) Release(unit string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.call(context.Background(), "UnrefUnit", unit).Store()
		switch {
		case hasName(err, errNoSuchUnit, errLoadFailed):
			c.log.Debug("unref unit: already gone", "unit", unit)
		case err != nil:
			c.log.Warn("unref unit", "unit", unit, "err", err)
		}
	}()
}
