package cgroup

import (
	"fmt"

	"github.com/machined-go/machined/service/proc"
	"strings"
	"syscall"
)

// unitSuffixes are the unit types that can own a cgroup below a slice.
var unitSuffixes = []string{".scope", ".service", ".socket", ".mount", ".swap"}

// validUnitName reports whether s is a syntactically valid non-slice unit name
// that can own a cgroup. It also guarantees s is a single safe path component.
func validUnitName(s string) bool {
	if !validUnitChars(s) {
		return false
	}
	for _, suf := range unitSuffixes {
		if len(s) > len(suf) && strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

// validSliceName reports whether s names a slice: "-.slice" (the root) or dash
// separated parts, none of them empty.
func validSliceName(s string) bool {
	if s == "-.slice" {
		return true
	}
	prefix, ok := strings.CutSuffix(s, ".slice")
	if !ok || prefix == "" || !validUnitChars(s) || strings.Contains(prefix, "@") {
		return false
	}
	return !strings.HasPrefix(prefix, "-") && !strings.HasSuffix(prefix, "-") && !strings.Contains(prefix, "--")
}

func validUnitChars(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' {
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
	return true
}

// slicePath returns the cgroup directory of a slice relative to the root:
// "-.slice" is the root itself, and every dash adds a parent level, so
// "machine-qemu.slice" is "machine.slice/machine-qemu.slice".
func slicePath(slice string) (string, error) {
	if !validSliceName(slice) {
		return "", fmt.Errorf("invalid slice name %q: %w", slice, syscall.EINVAL)
	}
	if slice == "-.slice" {
		return "", nil
	}
	prefix := strings.TrimSuffix(slice, ".slice")
	var parts []string
	for i := 0; i < len(prefix); i++ {
		if prefix[i] == '-' {
			parts = append(parts, escapeCgroupName(prefix[:i]+".slice"))
		}
	}
	parts = append(parts, escapeCgroupName(slice))
	return strings.Join(parts, "/"), nil
}

// kernelNamePrefixes are the "<controller>." and "cgroup." prefixes of the files the
// kernel puts in every cgroup directory; a child named like one would be confusing
// or refused, so such names get a leading '_' (the convention systemd uses too).
var kernelNamePrefixes = []string{"cgroup", "cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices", "freezer", "net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "dmem"}

func escapeCgroupName(s string) string {
	if strings.HasPrefix(s, "_") || strings.HasPrefix(s, ".") {
		return "_" + s
	}
	if head, _, ok := strings.Cut(s, "."); ok {
		for _, p := range kernelNamePrefixes {
			if head == p {
				return "_" + s
			}
		}
	}
	return s
}

func unescapeCgroupName(s string) string {
	return strings.TrimPrefix(s, "_")
}

// unitFromCgroupPath is proc.UnitFromCgroupPath: the owning unit and the path below it.
func unitFromCgroupPath(path string) (unit, subgroup string) { return proc.UnitFromCgroupPath(path) }

// cleanSubgroup validates a subgroup path from a caller: relative, no "." or ".."
// components, so it cannot leave the unit's directory.
func cleanSubgroup(sub string) (string, error) {
	sub = strings.Trim(sub, "/")
	if sub == "" {
		return "", nil
	}
	for _, p := range strings.Split(sub, "/") {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("invalid subgroup %q: %w", sub, syscall.EINVAL)
		}
	}
	return sub, nil
}
