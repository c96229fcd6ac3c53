package getdents

import (
	"os/exec"
	"strings"
	"testing"
)

// The reader serves the image pool and the tree copy alike: it knows neither,
// nor anything else of this module.
func TestImports(t *testing.T) {
	const module = "github.com/machined-go/machined/"
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && dep != module+"internal/getdents" {
			t.Errorf("getdents depends on %s", dep)
		}
	}
}
