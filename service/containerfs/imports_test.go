package containerfs

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The file mechanics know nothing of machines, transports or back ends: of
// this module they import service/proc and internal/getdents alone.
func TestImports(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/varlink/", "github.com/godbus/",
		"/machined/varlink", "/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz")
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/machined-go/machined/service" {
			t.Errorf("service/containerfs depends on the core it serves")
		}
	}
}
