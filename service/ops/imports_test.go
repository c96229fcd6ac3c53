package ops

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The framework is shared by the machine core and the image pool; it must know
// neither, nor any transport.
func TestImports(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/varlink/", "github.com/godbus/", "/machined/images",
		"/machined/varlink", "/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz")
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/machined-go/machined/service" {
			t.Errorf("service/ops depends on the core it serves")
		}
	}
}
