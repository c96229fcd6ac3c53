package cgroup

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/machined-go/machined/service/proc"
)

// validSliceName reports whether s names a slice: "-.slice" (the root) or dash
// separated parts, none of them empty.
func validSliceName(s string) bool {
	if s == "-.slice" {
		return true
	}
	prefix, ok := strings.CutSuffix(s, ".slice")
	if !ok || !proc.ValidUnitName(s) || strings.Contains(prefix, "@") {
		return false
	}
	return !strings.HasPrefix(prefix, "-") && !strings.HasSuffix(prefix, "-") && !strings.Contains(prefix, "--")
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
