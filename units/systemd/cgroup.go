package systemd

import "github.com/machined-go/machined/service/proc"

// The unit of a process when systemd cannot be asked: parsed from its cgroup.
var (
	readCgroupPath     = proc.CgroupPath
	unitFromCgroupPath = proc.UnitFromCgroupPath
)
