package service

import (
	"errors"
	"syscall"

	"github.com/machined-go/machined/service/proc"
)

// unitOfProcess names the unit pid runs in and its cgroup path below the unit's
// ("" at the unit's top), from /proc/PID/cgroup. Upstream reads the cgroup too,
// for lookups by PID and for a registering leader alike; asking the service
// manager instead would be IPC on every lookup and could answer differently
// from what lookups see. A process gone gives ESRCH. A process with no cgroup v2
// membership (a host with only the legacy hierarchy) is in no unit we can name,
// which registration accepts as it accepts any leader in no unit.
//
// A per-user instance names the unit of the user's service manager, as
// upstream's user scope does: that manager makes, stops and signals them,
// and to it the system manager's user@UID.service is no unit at all.
func (m *Manager) unitOfProcess(pid int) (unit, subgroup string, err error) {
	path, err := proc.CgroupPath(pid)
	if errors.Is(err, syscall.ENODATA) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if m.cfg.UserScope {
		unit, subgroup = proc.UserUnitFromCgroupPath(path)
	} else {
		unit, subgroup = proc.UnitFromCgroupPath(path)
	}
	return unit, subgroup, nil
}
