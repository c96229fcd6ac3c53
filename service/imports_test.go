package service

import (
	"os/exec"
	"strings"
	"testing"
)

// The core must stay transport-free: no Varlink, no D-Bus, no front end.
func TestNoTransportImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/varlink/", "github.com/godbus/", "/machined/varlink", "/machined/userdb", "/machined/dbusshim"} {
			if strings.Contains(dep, bad) {
				t.Errorf("service depends on %s", dep)
			}
		}
	}
}
