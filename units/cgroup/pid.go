package cgroup

import "github.com/machined-go/machined/service/proc"

// readCgroupPath is proc.CgroupPath: a process that is gone gives ESRCH.
func readCgroupPath(pid int) (string, error) { return proc.CgroupPath(pid) }

// UnitOfPID implements service.Units by reading /proc/PID/cgroup: the unit is the
// first non-slice component of the path, the subgroup what follows it.
func (b *Backend) UnitOfPID(pid int) (unit, subgroup string, err error) {
	path, err := readCgroupPath(pid)
	if err != nil {
		return "", "", err
	}
	unit, subgroup = unitFromCgroupPath(path)
	return unit, subgroup, nil
}
