package cgroup

import "testing"

func TestUnitFromCgroupPath(t *testing.T) {
	for _, tc := range []struct{ path, unit, sub string }{
		{"/machine.slice/machine-foo.scope/payload", "machine-foo.scope", "payload"},
		{"/machine.slice/machine-foo.scope/payload/a/b", "machine-foo.scope", "payload/a/b"},
		{"/machine.slice/machine-foo.scope", "machine-foo.scope", ""},
		{"/machine.slice/machine-foo.scope/", "machine-foo.scope", ""},
		{`/machine.slice/machine-fedora\x2d40.scope`, `machine-fedora\x2d40.scope`, ""},
		{"/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", ""},
		{"/init.scope", "init.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/x.service", "user@1000.service", "app.slice/x.service"},
		{"/_cpu.foo.scope", "cpu.foo.scope", ""},
		{"/", "", ""},
		{"", "", ""},
		{"/machine.slice", "", ""},
		{"/process_api/x", "", ""},
		{"/process_api/62fef4890ad7", "", ""},
		{"/foo.target/x", "", ""},
		{"/machine.slice//machine-foo.scope", "", ""},
	} {
		unit, sub := unitFromCgroupPath(tc.path)
		if unit != tc.unit || sub != tc.sub {
			t.Errorf("unitFromCgroupPath(%q) = %q, %q; want %q, %q", tc.path, unit, sub, tc.unit, tc.sub)
		}
	}
}

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

func TestValidUnitName(t *testing.T) {
	for _, ok := range []string{"machine-foo.scope", `machine-fedora\x2d40.scope`, "a.service", "getty@tty1.service", "x:y_z.mount"} {
		if !validUnitName(ok) {
			t.Errorf("validUnitName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".scope", "machine.slice", "foo", "a/b.scope", "../x.scope", "a b.scope", ".hidden.scope", "x.target"} {
		if validUnitName(bad) {
			t.Errorf("validUnitName(%q) = true", bad)
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
