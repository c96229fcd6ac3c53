package machineimage

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The MachineImage front end stands beside the others and above the core only.
func TestFrontEndImports(t *testing.T) {
	depcheck.Forbid(t, ".", "/machined/userdb", "/machined/dbusshim", "/machined/units",
		"/machined/authz", "github.com/godbus/")
}
