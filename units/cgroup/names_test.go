package cgroup

import "testing"

func TestSlicePath(t *testing.T) {
	for _, tc := range []struct{ slice, path string }{
		{"machine.slice", "machine.slice"},
		{"-.slice", ""},
		{"machine-qemu.slice", "machine.slice/machine-qemu.slice"},
		{"a-b-c.slice", "a.slice/a-b.slice/a-b-c.slice"},
		{"cpu.slice", "_cpu.slice"},
	} {
		got, err := slicePath(tc.slice)
		if err != nil || got != tc.path {
			t.Errorf("slicePath(%q) = %q, %v; want %q", tc.slice, got, err, tc.path)
		}
	}
	for _, bad := range []string{"", "machine", "machine.scope", "-a.slice", "a-.slice", "a--b.slice", "../x.slice", "a/b.slice", "a@b.slice", ".slice"} {
		if p, err := slicePath(bad); err == nil {
			t.Errorf("slicePath(%q) = %q, want error", bad, p)
		}
	}
}

func TestCleanSubgroup(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "payload": "payload", "/a/b/": "a/b"} {
		if got, err := cleanSubgroup(in); err != nil || got != want {
			t.Errorf("cleanSubgroup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"..", "a/../b", "a//b", "./a"} {
		if _, err := cleanSubgroup(bad); err == nil {
			t.Errorf("cleanSubgroup(%q) succeeded", bad)
		}
	}
}
