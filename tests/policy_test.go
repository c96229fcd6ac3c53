package tests

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"
)

// The polkit policy has every action of v262 with its defaults (any,
// inactive, active) and what each implies, inspect-machines and
// inspect-images (261) included.
func TestPolkitPolicy(t *testing.T) {
	b, err := os.ReadFile("../packaging/org.freedesktop.machine1.policy")
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Actions []struct {
			ID       string `xml:"id,attr"`
			Defaults struct {
				Any      string `xml:"allow_any"`
				Inactive string `xml:"allow_inactive"`
				Active   string `xml:"allow_active"`
			} `xml:"defaults"`
			Annotations []struct {
				Key   string `xml:"key,attr"`
				Value string `xml:",chardata"`
			} `xml:"annotate"`
		} `xml:"action"`
	}
	if err := xml.Unmarshal(b, &policy); err != nil {
		t.Fatal(err)
	}
	const admin = "auth_admin auth_admin auth_admin_keep"
	want := map[string]struct{ defaults, implies string }{
		"login":            {admin, ""},
		"host-login":       {"auth_admin auth_admin yes", ""},
		"shell":            {admin, "org.freedesktop.login1.login"},
		"host-shell":       {admin, "org.freedesktop.login1.host-login"},
		"open-pty":         {admin, ""},
		"host-open-pty":    {admin, ""},
		"manage-machines":  {admin, "org.freedesktop.login1.shell org.freedesktop.login1.login org.freedesktop.machine1.inspect-machines"},
		"inspect-machines": {admin, ""},
		"create-machine":   {admin, "org.freedesktop.login1.shell org.freedesktop.login1.login org.freedesktop.machine1.register-machine"},
		"register-machine": {"auth_admin auth_admin yes", ""},
		"manage-images":    {admin, "org.freedesktop.machine1.inspect-images"},
		"inspect-images":   {admin, ""},
	}
	seen := map[string]bool{}
	for _, a := range policy.Actions {
		name, ok := strings.CutPrefix(a.ID, "org.freedesktop.machine1.")
		w, known := want[name]
		if !ok || !known {
			t.Errorf("action %s is not one of v262's", a.ID)
			continue
		}
		seen[name] = true
		if got := a.Defaults.Any + " " + a.Defaults.Inactive + " " + a.Defaults.Active; got != w.defaults {
			t.Errorf("%s defaults %q, want %q", a.ID, got, w.defaults)
		}
		implies := ""
		for _, an := range a.Annotations {
			if an.Key == "org.freedesktop.policykit.imply" {
				implies = strings.TrimSpace(an.Value)
			}
		}
		if implies != w.implies {
			t.Errorf("%s implies %q, want %q", a.ID, implies, w.implies)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("action org.freedesktop.machine1.%s missing", name)
		}
	}
}
