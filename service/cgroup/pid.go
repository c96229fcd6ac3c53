package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// readCgroupPath returns pid's unified-hierarchy cgroup path (the "0::" line of
// /proc/PID/cgroup). A process that is gone gives an error wrapping ESRCH.
func readCgroupPath(pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("invalid pid %d: %w", pid, syscall.EINVAL)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("process %d: %w", pid, syscall.ESRCH)
	}
	if err != nil {
		return "", fmt.Errorf("read cgroup of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path, nil
		}
	}
	return "", fmt.Errorf("process %d has no cgroup2 membership: %w", pid, syscall.ENODATA)
}

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
