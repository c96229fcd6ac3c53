package client

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The client is for other programs: it must bring none of the daemon with it.
func TestClientImportsNothingOfTheDaemon(t *testing.T) {
	depcheck.Forbid(t, ".", "/machined/service", "/machined/varlink", "/machined/userdb",
		"/machined/dbusshim", "/machined/units", "/machined/authz", "/machined/internal",
		"/machined/cmd", "/machined/bench", "github.com/godbus/")
}
