// Package depcheck is the import guard the packages' tests share: it lists a
// package's dependencies with `go list -deps` and reports those it must not have.
//
// It must import nothing of this module.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t for every dependency of pkg (a path relative to the test's
// directory) whose import path contains one of bad.
func Forbid(t *testing.T, pkg string, bad ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range bad {
			if strings.Contains(dep, b) {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
