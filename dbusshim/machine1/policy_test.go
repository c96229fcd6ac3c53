package machine1

import (
	"encoding/xml"
	"os"
	"testing"
)

// The packaged bus policy lets everybody call every Manager and Machine
// method (the daemon decides), and lets only root own the name.
func TestBusPolicyListsEveryMethod(t *testing.T) {
	b, err := os.ReadFile("../../packaging/org.freedesktop.machine1.conf")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Policies []struct {
			User    string `xml:"user,attr"`
			Context string `xml:"context,attr"`
			Allow   []struct {
				Own    string `xml:"own,attr"`
				Dest   string `xml:"send_destination,attr"`
				Iface  string `xml:"send_interface,attr"`
				Member string `xml:"send_member,attr"`
			} `xml:"allow"`
		} `xml:"policy"`
	}
	if err := xml.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	owner := ""
	for _, p := range conf.Policies {
		for _, a := range p.Allow {
			if a.Own != "" {
				owner = p.User
			}
			if p.Context == "default" && a.Dest == BusName {
				allowed[a.Iface+"."+a.Member] = true
			}
		}
	}
	if owner != "root" {
		t.Errorf("name owned by %q", owner)
	}
	s := New(Config{})
	for _, i := range []*iface{s.manager, s.machine} {
		for _, m := range i.methods {
			if !allowed[i.name+"."+m.name] {
				t.Errorf("%s.%s not allowed", i.name, m.name)
			}
		}
	}
	for _, m := range []string{"org.freedesktop.DBus.Properties.Get", "org.freedesktop.DBus.Properties.GetAll", "org.freedesktop.DBus.Introspectable.", "org.freedesktop.DBus.Peer."} {
		if !allowed[m] {
			t.Errorf("%s not allowed", m)
		}
	}
	if allowed["org.freedesktop.DBus.Properties.Set"] {
		t.Error("Properties.Set allowed for everybody")
	}
}
