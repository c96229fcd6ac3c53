package proc

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CgroupPath returns the unified-hierarchy ("0::") cgroup path of pid.
func CgroupPath(pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("invalid pid %d: %w", pid, syscall.EINVAL)
	}
	data, err := readProcFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("process %d: %w", pid, syscall.ESRCH)
	}
	if err != nil {
		return "", fmt.Errorf("reading cgroup of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path, nil
		}
	}
	return "", fmt.Errorf("pid %d has no unified cgroup: %w", pid, syscall.ENODATA)
}

// unitSuffixes are the unit types that get a cgroup of their own below a slice.
var unitSuffixes = []string{".service", ".scope", ".socket", ".mount", ".swap"}

func validUnitName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':' || c == '_' || c == '.' || c == '\\' || c == '@' || c == '-':
		default:
			return false
		}
	}
	for _, suf := range unitSuffixes {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			return true
		}
	}
	return false
}

// UnitFromCgroupPath returns the first non-slice unit in a cgroup path and the
// remainder below it.
func UnitFromCgroupPath(path string) (unit, subgroup string) {
	if path == "/" || path == "" {
		return "", ""
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, c := range parts {
		// systemd prefixes cgroup names that could clash with kernel files by "_".
		c = strings.TrimPrefix(c, "_")
		switch {
		case c == "":
			return "", "" // "//" is no path systemd creates
		case strings.HasSuffix(c, ".slice"):
			continue
		case !validUnitName(c):
			return "", ""
		}
		return c, strings.Join(parts[i+1:], "/")
	}
	return "", ""
}

// Cgroup2Root returns the mount point of the cgroup2 hierarchy.
func Cgroup2Root() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && int64(st.Type) == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", errors.New("no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}
