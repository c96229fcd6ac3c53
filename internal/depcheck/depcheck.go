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

// Alone fails t for every package of the module that pkg (a path relative to
// the test's directory) depends on, but pkg itself: the guard of the packages
// that must import nothing of this module.
func Alone(t *testing.T, pkg string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Module.Path}} {{join .Deps " "}}`, pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("go list %s: %q", pkg, out)
	}
	self, module := f[0], f[1]
	for _, dep := range f[2:] {
		if strings.HasPrefix(dep, module+"/") && dep != self {
			t.Errorf("%s depends on %s", self, dep)
		}
	}
}
