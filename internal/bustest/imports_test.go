package bustest

import (
	"os/exec"
	"strings"
	"testing"
)

// internal/ holds helpers that know nothing of machined: of this module they
// may import only each other.
func TestInternalImportsOnlyInternal(t *testing.T) {
	const module = "github.com/machined-go/machined"
	out, err := exec.Command("go", "list", "-deps", module+"/internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module+"/") && !strings.HasPrefix(dep, module+"/internal/") {
			t.Errorf("internal/... depends on %s", dep)
		}
	}
}
