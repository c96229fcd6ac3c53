package containerbus

import (
	"os/exec"
	"strings"
	"testing"
)

// A back end of the core: no front end, no Varlink.
func TestImportsNoFrontEnd(t *testing.T) {
	const module = "github.com/machined-go/machined"
	out, err := exec.Command("go", "list", "-deps", module+"/containerbus").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{module + "/varlink", module + "/userdb", module + "/dbusshim/machine1", module + "/cmd", "github.com/varlink/"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") || strings.HasPrefix(dep, bad) && strings.HasSuffix(bad, "/") {
				t.Errorf("containerbus depends on %s", dep)
			}
		}
	}
}
