package images

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The pool is a core package beside service: the core calls it, never the reverse,
// and it knows no transport or back end.
func TestImports(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/varlink/", "github.com/godbus/", "/machined/varlink",
		"/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz")
	// service/ops, service/proc and service/envfile are allowed; service itself is not.
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/machined-go/machined/service" {
			t.Errorf("images depends on %s", dep)
		}
	}
}
