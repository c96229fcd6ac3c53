package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CgroupPath returns the process' cgroup v2 path: the "0::" line of
// /proc/PID/cgroup, "/" for the root cgroup. v1 controller lines, present on
// hybrid hosts, are ignored. A process that is gone yields an error wrapping
// syscall.ESRCH; one without a v2 line (pure v1 host) syscall.ENODATA.
func CgroupPath(pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("cgroup of pid %d: invalid pid: %w", pid, syscall.EINVAL)
	}
	var path string
	var ok bool
	err := scanProcFile("/proc/"+strconv.Itoa(pid)+"/cgroup", func(b []byte) { path, ok = parseCgroupFile(b) })
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, syscall.ESRCH)
	}
	if err != nil {
		return "", fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	if !ok {
		return "", fmt.Errorf("pid %d has no cgroup v2 membership: %w", pid, syscall.ENODATA)
	}
	return path, nil
}

// parseCgroupFile returns the path of the "0::" line of a /proc/PID/cgroup
// file, copied out of data.
func parseCgroupFile(data []byte) (string, bool) {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if path, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			if len(path) == 0 {
				return "/", true
			}
			return string(path), true
		}
	}
	return "", false
}

// unitSuffixes are all unit types.
var unitSuffixes = []string{
	".service", ".scope", ".socket", ".mount", ".swap", ".slice",
	".timer", ".path", ".target", ".device", ".automount",
}

// cgroupUnitSuffixes are the unit types that get a cgroup of their own below a
// slice; timers, targets and the like never own processes.
var cgroupUnitSuffixes = unitSuffixes[:5]

// ValidUnitName reports whether s is a concrete unit name: at most 255 bytes
// of [A-Za-z0-9:_.\@-], not starting with '.', a non-empty prefix, a known
// type suffix, and at most one '@', which must be followed by a non-empty
// instance. Templates ("foo@.service") are refused: they are never a loaded
// unit. The cgroup backend makes directories of these names, so a name is
// also always one plain path component.
func ValidUnitName(s string) bool {
	if len(s) > 255 || strings.HasPrefix(s, ".") {
		return false
	}
	stem := ""
	for _, suf := range unitSuffixes {
		if rest, ok := strings.CutSuffix(s, suf); ok {
			stem = rest
			break
		}
	}
	if stem == "" {
		return false
	}
	for i := 0; i < len(stem); i++ {
		c := stem[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '_', c == '.', c == '\\', c == '@', c == '-':
		default:
			return false
		}
	}
	switch at := strings.IndexByte(stem, '@'); {
	case at < 0:
		return true
	case at == 0, at == len(stem)-1:
		return false // no prefix, or a template
	default:
		return strings.IndexByte(stem[at+1:], '@') < 0
	}
}

// UnitFromCgroupPath splits a cgroup path into the system-manager unit that
// owns it and the remainder below that unit's cgroup. Walking from the root,
// slices are skipped; the first other component is the unit if it is a valid
// name of a cgroup-owning unit type, and otherwise there is no unit (a cgroup
// made outside systemd's scheme, or a malformed path with empty components).
// Only systemd's cgroup-name escape (a leading '_') is undone; \x escapes stay.
func UnitFromCgroupPath(path string) (unit, subgroup string) {
	rest := strings.TrimPrefix(path, "/")
	if rest == "" {
		return "", ""
	}
	for {
		comp, tail, _ := strings.Cut(rest, "/")
		comp = strings.TrimPrefix(comp, "_")
		switch {
		case comp == "":
			return "", ""
		case strings.HasSuffix(comp, ".slice"):
			if tail == "" {
				return "", ""
			}
			rest = tail
			continue
		case !ValidCgroupUnitName(comp):
			return "", ""
		}
		return comp, tail
	}
}

// UserUnitFromCgroupPath is UnitFromCgroupPath for a user's service manager:
// the unit of that manager (below its user@UID.service) that owns path, and
// the remainder below that unit's cgroup. A path outside every user manager,
// or the manager's own top cgroup, has no user unit. A per-user instance
// names units this way because they are the only ones its manager knows.
func UserUnitFromCgroupPath(path string) (unit, subgroup string) {
	manager, rest := UnitFromCgroupPath(path)
	if !strings.HasPrefix(manager, "user@") || !strings.HasSuffix(manager, ".service") || strings.HasPrefix(rest, "/") {
		return "", "" // not a user manager, or an empty component after it
	}
	return UnitFromCgroupPath(rest)
}

// ValidCgroupUnitName reports whether s is a valid name of a unit that owns a
// cgroup below a slice: a scope, service, socket, mount or swap.
func ValidCgroupUnitName(s string) bool {
	return ValidUnitName(s) && hasSuffix(s, cgroupUnitSuffixes)
}

func hasSuffix(s string, suffixes []string) bool {
	for _, suf := range suffixes {
		if strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

// cgroup2Candidates are where the cgroup2 hierarchy is mounted on unified and
// on hybrid hosts respectively.
var cgroup2Candidates = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// Cgroup2Root returns the mount point of the cgroup2 hierarchy: /sys/fs/cgroup
// on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
func Cgroup2Root() (string, error) {
	for _, p := range cgroup2Candidates {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && int64(st.Type) == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup2 hierarchy at %s: %w", strings.Join(cgroup2Candidates, " or "), syscall.ENOENT)
}
