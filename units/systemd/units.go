package systemd

import (
	"context"
	"fmt"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

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
