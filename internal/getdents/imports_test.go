package getdents

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The reader serves the image pool and the tree copy alike: it knows neither,
// nor anything else of this module.
func TestImports(t *testing.T) { depcheck.Alone(t, ".") }
