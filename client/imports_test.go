package client

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The client is for other programs: it must bring none of the daemon with it.
func TestClientImportsNothingOfTheDaemon(t *testing.T) {
	depcheck.Forbid(t, ".", "github.com/machined-go/", "github.com/godbus/")
}
