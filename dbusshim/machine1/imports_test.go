package machine1

import (
	"os/exec"
	"strings"
	"testing"
)

// The D-Bus shim stands beside the Varlink front ends, not on them; and the
// guard knows nothing of any front end (authz/polkit has its own guard).
func TestNoFrontEndImports(t *testing.T) {
	for pkg, bad := range map[string][]string{
		".":          {"github.com/varlink/", "/machined/varlink", "/machined/userdb"},
		"../busconn": {"github.com/varlink/", "/machined/varlink", "/machined/userdb", "/machined/service", "/machined/dbusshim/machine1"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if strings.Contains(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
