package copystreams

import (
	"os/exec"
	"strings"
	"testing"
)

// The streams serve the container copy and the image clone alike: they know
// neither, nor anything else of this module.
func TestImports(t *testing.T) {
	const module = "github.com/machined-go/machined/"
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && dep != module+"internal/copystreams" {
			t.Errorf("copystreams depends on %s", dep)
		}
	}
}
