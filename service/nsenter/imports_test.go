package nsenter

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The package serves the core and sits below it: it may use service/proc and
// internal/…, never the core itself, a transport or a back end.
func TestImports(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/varlink/", "github.com/godbus/", "/machined/varlink",
		"/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz", "/machined/images")
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/machined-go/machined/service" {
			t.Errorf("service/nsenter depends on the core it serves")
		}
	}
}
