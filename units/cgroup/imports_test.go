package cgroup

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/machined-go/machined"

// Back ends serve the core: no unit back end may depend on a front end.
func TestUnitsImportNoFrontEnd(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"/units/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{module + "/varlink", module + "/userdb", module + "/dbusshim/machine1", module + "/cmd"} {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("units/... depends on the front end %s", dep)
			}
		}
		if strings.HasPrefix(dep, "github.com/varlink/") {
			t.Errorf("units/... depends on %s", dep)
		}
	}
}

// The cgroup back end needs of this module only the interface it implements
// and /proc, and no bus or Varlink library.
func TestCgroupImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+"/units/cgroup").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, module+"/") && imp != module+"/service" && imp != module+"/service/proc" {
			t.Errorf("units/cgroup imports %s", imp)
		}
		if strings.HasPrefix(imp, "github.com/godbus/") || strings.HasPrefix(imp, "github.com/varlink/") {
			t.Errorf("units/cgroup imports %s", imp)
		}
	}
}
