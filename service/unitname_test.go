package service

import "testing"

func TestMachineScope(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"rawhide", `machine-rawhide.scope`},
		{"fedora-40", `machine-fedora\x2d40.scope`},
		{"a.b", `machine-a.b.scope`},
		{"libvirt-qemu-1-vm", `machine-libvirt\x2dqemu\x2d1\x2dvm.scope`},
		{"9p", `machine-9p.scope`},
	} {
		if got := MachineScope(tc.name); got != tc.want {
			t.Errorf("MachineScope(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	// A leading dot cannot occur in a valid machine name, but the escaping rule
	// must still match upstream's for libvirt's own computation.
	if got := escapeUnitName(".x/y\\z"); got != `\x2ex-y\x5cz` {
		t.Errorf("escapeUnitName = %q", got)
	}
}
