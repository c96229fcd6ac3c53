package service

import (
	"net/netip"
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
	ok := []UnitProperty{
		{Name: "DevicePolicy", Value: StringValue("closed")},
		{Name: "DeviceAllow", Value: DeviceAccessListValue{{Path: "/dev/net/tun", Access: "rwm"}}},
		{Name: "After", Value: StringListValue{"libvirtd.service"}},
		{Name: "MemoryMax", Value: Uint64Value(1 << 30)},
	}
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
		{"", []UnitProperty{{Name: "Slice", Value: StringValue("x.slice")}}, "Slice", "once"},
		{"", []UnitProperty{{Name: "User", Value: StringValue("root")}}, "scopeProperties", `"User"`},
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
		full[i] = UnitProperty{Name: "DeviceAllow", Value: DeviceAccessListValue{}}
	}
	if err := validateScope("", full); err != nil {
		t.Errorf("%d properties refused: %v", MaxScopeProperties, err)
	}
}

// one value of every type, by its signature.
var valueOfSignature = map[string]PropertyValue{
	"s":       StringValue("x"),
	"b":       BoolValue(true),
	"t":       Uint64Value(1),
	"i":       Int32Value(15),
	"as":      StringListValue{"a.service"},
	"a(ss)":   DeviceAccessListValue{{Path: "/dev/null", Access: "rw"}},
	"a(st)":   DeviceSettingListValue{{Path: "/dev/sda", Value: 100}},
	"ay":      BitmaskValue{0x03},
	"a(iayu)": IPPrefixListValue{netip.MustParsePrefix("192.168.0.0/16")},
}

// Every whitelisted property takes a value of its own type and refuses a value
// of any other type, naming itself and the type it expects.
func TestScopePropertyTypes(t *testing.T) {
	if len(scopePropertySignatures) == 0 {
		t.Fatal("empty whitelist")
	}
	for name, sig := range scopePropertySignatures {
		if _, ok := valueOfSignature[sig]; !ok {
			t.Errorf("%s: signature %s has no value type", name, sig)
			continue
		}
		for vsig, v := range valueOfSignature {
			err := validateScope("", []UnitProperty{{Name: name, Value: v}})
			if vsig == sig {
				if err != nil {
					t.Errorf("%s with a %s value refused: %v", name, vsig, err)
				}
				continue
			}
			ia, ok := AsInvalidArg(err)
			if !ok || ia.Field != "scopeProperties" || !strings.Contains(ia.Reason, `"`+name+`"`) || !strings.Contains(ia.Reason, `type "`+sig+`"`) {
				t.Errorf("%s with a %s value: %v, want scopeProperties naming %q and %q", name, vsig, err, name, sig)
			}
		}
		err := validateScope("", []UnitProperty{{Name: name}})
		if ia, ok := AsInvalidArg(err); !ok || ia.Field != "scopeProperties" || !strings.Contains(ia.Reason, "no value") {
			t.Errorf("%s without a value: %v", name, err)
		}
	}
}

// The signatures nspawn 252 and libvirt send for the properties they set.
func TestScopePropertySignatureOfClients(t *testing.T) {
	for name, want := range map[string]string{
		"DeviceAllow": "a(ss)", "DevicePolicy": "s", "Controller": "s", "KillSignal": "i",
		"KillMode": "s", "After": "as", "Before": "as", "TasksMax": "t", "IODeviceWeight": "a(st)",
		"AllowedCPUs": "ay", "IPAddressAllow": "a(iayu)",
	} {
		if got, ok := ScopePropertySignature(name); !ok || got != want {
			t.Errorf("ScopePropertySignature(%s) = %q, %v, want %q", name, got, ok, want)
		}
	}
	if sig, ok := ScopePropertySignature("PIDs"); ok {
		t.Errorf("PIDs on the whitelist as %s", sig)
	}
}

// An address list may hold only valid prefixes: a prefix longer than its
// family's address is refused.
func TestScopePropertyAddressPrefixes(t *testing.T) {
	v4 := netip.MustParseAddr("10.0.0.0")
	v6 := netip.MustParseAddr("fd00::")
	good := IPPrefixListValue{netip.PrefixFrom(v4, 0), netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)}
	if err := validateScope("", []UnitProperty{{Name: "IPAddressAllow", Value: good}}); err != nil {
		t.Errorf("valid prefixes refused: %v", err)
	}
	for _, bad := range []netip.Prefix{netip.PrefixFrom(v4, 33), netip.PrefixFrom(v6, 129), {}} {
		err := validateScope("", []UnitProperty{{Name: "IPAddressDeny", Value: IPPrefixListValue{netip.PrefixFrom(v4, 8), bad}}})
		if ia, ok := AsInvalidArg(err); !ok || ia.Field != "scopeProperties" || !strings.Contains(ia.Reason, `"IPAddressDeny"`) {
			t.Errorf("prefix %v: %v, want scopeProperties naming IPAddressDeny", bad, err)
		}
	}
}
