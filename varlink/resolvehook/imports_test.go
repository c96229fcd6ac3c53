package resolvehook

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The hook front end stands beside the others and above the core only.
func TestFrontEndImports(t *testing.T) {
	depcheck.Forbid(t, ".", "/machined/varlink/machine", "/machined/userdb", "/machined/dbusshim",
		"/machined/units", "/machined/authz", "github.com/godbus/")
}
