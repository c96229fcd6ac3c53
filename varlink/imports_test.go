package varlink

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The transport serves every socket and knows none of them.
func TestTransportImports(t *testing.T) {
	depcheck.Forbid(t, ".", "/machined/service", "/machined/varlink/", "/machined/userdb",
		"/machined/dbusshim", "/machined/units", "/machined/authz", "github.com/godbus/")
}
