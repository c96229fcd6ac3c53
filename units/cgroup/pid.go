package cgroup

import "github.com/machined-go/machined/service/proc"

// UnitOfPID implements service.Units by reading /proc/PID/cgroup: the unit is the
// first non-slice component of the path, the subgroup what follows it.
func (b *Backend) UnitOfPID(pid int) (unit, subgroup string, err error) {
	path, err := proc.CgroupPath(pid)
	if err != nil {
		return "", "", err
	}
	unit, subgroup = proc.UnitFromCgroupPath(path)
	return unit, subgroup, nil
}
