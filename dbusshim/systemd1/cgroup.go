package systemd1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// readCgroupPath returns pid's cgroup2 path from the "0::" line of
// /proc/PID/cgroup; a vanished process gives an error wrapping ESRCH.
func readCgroupPath(pid int) (string, error) {
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

// unitFromCgroupPath returns the first component after the leading slices,
// when it looks like a unit, and the rest of the path below it.
func unitFromCgroupPath(path string) (unit, subgroup string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		p = strings.TrimPrefix(p, "_") // cgroup-name escaping
		if p == "" {
			return "", ""
		}
		if strings.HasSuffix(p, ".slice") {
			continue
		}
		for _, suffix := range []string{".scope", ".service", ".socket", ".mount", ".swap"} {
			if len(p) > len(suffix) && strings.HasSuffix(p, suffix) {
				return p, strings.Join(parts[i+1:], "/")
			}
		}
		return "", ""
	}
	return "", ""
}
