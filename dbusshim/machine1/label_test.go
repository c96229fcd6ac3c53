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

// ListImages and ListMachines make a path per entry: one allocation each, and
// the same path as escaping the label on its own.
func TestObjectPathsInOneAllocation(t *testing.T) {
	for _, name := range []string{"", "rawhide", "fedora-40", ".host", "é", "a.b.c-d_e"} {
		if got, want := string(ImagePath(name)), imagePrefix+EscapeLabel(name); got != want {
			t.Errorf("ImagePath(%q) = %q, want %q", name, got, want)
		}
		if got, want := string(MachinePath(name)), machinePrefix+EscapeLabel(name); got != want {
			t.Errorf("MachinePath(%q) = %q, want %q", name, got, want)
		}
	}
	name := "fedora-40.x86_64"
	if n := testing.AllocsPerRun(100, func() { _ = ImagePath(name) }); n != 1 {
		t.Errorf("ImagePath: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = MachinePath(name) }); n != 1 {
		t.Errorf("MachinePath: %v allocations, want 1", n)
	}
}
