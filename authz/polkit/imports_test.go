package polkit

import (
	"os/exec"
	"strings"
	"testing"
)

// The authorizer serves the core for both transports: nothing under authz/
// may depend on a front end.
func TestAuthzImportNoFrontEnd(t *testing.T) {
	const module = "github.com/machined-go/machined"
	out, err := exec.Command("go", "list", "-deps", module+"/authz/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{module + "/varlink", module + "/userdb", module + "/dbusshim/machine1", module + "/cmd"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("authz/... depends on the front end %s", dep)
			}
		}
		if strings.HasPrefix(dep, "github.com/varlink/") {
			t.Errorf("authz/... depends on %s", dep)
		}
	}
}
