package service

import (
	"strings"
	"testing"
)

func TestValidSliceName(t *testing.T) {
	for _, s := range []string{"machine.slice", "a-b.slice", "a-b-c.slice", "x\\x2dy.slice", "a:b_c.slice", "-.slice", strings.Repeat("a", 249) + ".slice"} {
		if !ValidSliceName(s) {
			t.Errorf("ValidSliceName(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".slice", "foo", "foo.scope", "../x.slice", "x/y.slice", "-a.slice", "a-.slice", "a--b.slice", ".a.slice", "a@b.slice", "a b.slice", strings.Repeat("a", 250) + ".slice"} {
		if ValidSliceName(s) {
			t.Errorf("ValidSliceName(%q) = true", s)
		}
	}
}

func TestValidateScope(t *testing.T) {
	ok := []UnitProperty{{Name: "DevicePolicy"}, {Name: "DeviceAllow"}, {Name: "After"}, {Name: "MemoryMax"}}
	if err := validateScope("machine-qemu.slice", ok); err != nil {
		t.Errorf("whitelisted properties refused: %v", err)
	}
	if err := validateScope("", nil); err != nil {
		t.Errorf("no slice, no properties: %v", err)
	}
	for _, tc := range []struct {
		slice string
		props []UnitProperty
		field string
		says  string
	}{
		{"-.slice", nil, "Slice", "root slice"},
		{"../x.slice", nil, "Slice", "../x.slice"},
		{"", []UnitProperty{{Name: "Slice"}}, "Slice", "once"},
		{"", []UnitProperty{{Name: "User"}}, "scopeProperties", `"User"`},
		{"", []UnitProperty{{Name: "PIDFDs"}}, "scopeProperties", `"PIDFDs"`},
		{"", make([]UnitProperty, MaxScopeProperties+1), "scopeProperties", "more than 64"},
	} {
		err := validateScope(tc.slice, tc.props)
		ia, isIA := AsInvalidArg(err)
		if !isIA || ia.Field != tc.field || !strings.Contains(ia.Reason, tc.says) {
			t.Errorf("validateScope(%q, %d props) = %v, want %s naming %q", tc.slice, len(tc.props), err, tc.field, tc.says)
		}
	}
	full := make([]UnitProperty, MaxScopeProperties)
	for i := range full {
		full[i].Name = "DeviceAllow"
	}
	if err := validateScope("", full); err != nil {
		t.Errorf("%d properties refused: %v", MaxScopeProperties, err)
	}
}
