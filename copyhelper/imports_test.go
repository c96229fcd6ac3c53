package copyhelper

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// A back end of the core: no front end and no bus; of the core only what a
// copy needs (the tree copy and the identities), never the registry itself.
func TestImports(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/varlink/", "github.com/godbus/", "/machined/varlink",
		"/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz",
		"/machined/cmd", "/machined/service/persist", "/machined/service/ops")
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/machined-go/machined/service" {
			t.Error("copyhelper depends on the core's registry package")
		}
	}
}
