package machine1

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestEscapeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"":          "_",
		"rawhide":   "rawhide",
		"fedora-40": "fedora_2d40",
		".host":     "_2ehost",
		"1abc":      "_31abc",
		"a.b":       "a_2eb",
		"9p":        "_39p",
		"a9":        "a9",
		"A_b":       "A_5fb",
		"é":         "_c3_a9",
		"self":      "self",
	} {
		if got := EscapeLabel(in); got != want {
			t.Errorf("EscapeLabel(%q) = %q, want %q", in, got, want)
		}
		if got := UnescapeLabel(want); got != in {
			t.Errorf("UnescapeLabel(%q) = %q, want %q", want, got, in)
		}
	}
	// Invalid escapes stay literal, as in sd-bus.
	for in, want := range map[string]string{"a_zz": "a_zz", "a_2": "a_2", "_": "", "x_": "x_", "_2E": "."} {
		if got := UnescapeLabel(in); got != want {
			t.Errorf("UnescapeLabel(%q) = %q, want %q", in, got, want)
		}
	}
	if MachinePath(".host") != "/org/freedesktop/machine1/machine/_2ehost" {
		t.Error(MachinePath(".host"))
	}
}

func FuzzLabel(f *testing.F) {
	for _, s := range []string{"", ".host", "fedora-40", "1abc", "a_b", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeLabel(s)
		if got := UnescapeLabel(e); got != s {
			t.Fatalf("round trip %q -> %q -> %q", s, e, got)
		}
		if p := dbus.ObjectPath(machinePrefix + e); !p.IsValid() {
			t.Fatalf("invalid path %q for %q", p, s)
		}
	})
}
