package service

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The core must stay transport-free and back-end-free: no Varlink, no D-Bus, no
// front end, no unit or polkit back end (they plug into its interfaces).
func TestNoTransportImports(t *testing.T) {
	depcheck.Forbid(t, "./...", "github.com/varlink/", "github.com/godbus/", "/machined/varlink",
		"/machined/userdb", "/machined/dbusshim", "/machined/units", "/machined/authz")
}
