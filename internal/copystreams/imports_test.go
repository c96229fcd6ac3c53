package copystreams

import (
	"testing"

	"github.com/machined-go/machined/internal/depcheck"
)

// The streams serve the container copy and the image clone alike: they know
// neither, nor anything else of this module.
func TestImports(t *testing.T) { depcheck.Alone(t, ".") }
