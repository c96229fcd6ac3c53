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
func unitOfProcess(pid int) (unit, subgroup string, err error) {
	path, err := proc.CgroupPath(pid)
	if errors.Is(err, syscall.ENODATA) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	unit, subgroup = proc.UnitFromCgroupPath(path)
	return unit, subgroup, nil
}
