package userdb

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// userdb takes the Varlink transport, never the Machine front end.
func TestUserdbImports(t *testing.T) {
	depcheck.Forbid(t, ".", "/machined/varlink/machine", "/machined/dbusshim", "/machined/units",
		"/machined/authz", "github.com/godbus/")
}
