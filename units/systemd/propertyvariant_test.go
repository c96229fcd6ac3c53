package systemd

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

// typedProperties holds one whitelisted property of every value type, and what
// the manager must receive for it: the signature and the decoded value.
var typedProperties = []struct {
	prop service.UnitProperty
	sig  string
	want any // decoded into the type of want by dbus.Store
}{
	{service.UnitProperty{Name: "DevicePolicy", Value: service.StringValue("closed")}, "s", "closed"},
	{service.UnitProperty{Name: "SendSIGHUP", Value: service.BoolValue(true)}, "b", true},
	{service.UnitProperty{Name: "TasksMax", Value: service.Uint64Value(512)}, "t", uint64(512)},
	{service.UnitProperty{Name: "KillSignal", Value: service.Int32Value(37)}, "i", int32(37)},
	{service.UnitProperty{Name: "After", Value: service.StringListValue{"a.service", "b.target"}}, "as", []string{"a.service", "b.target"}},
	{service.UnitProperty{Name: "Wants", Value: service.StringListValue{}}, "as", []string{}},
	{service.UnitProperty{Name: "DeviceAllow", Value: service.DeviceAccessListValue{{Path: "/dev/net/tun", Access: "rwm"}, {Path: "char-pts", Access: "rw"}}},
		"a(ss)", []deviceAccess{{"/dev/net/tun", "rwm"}, {"char-pts", "rw"}}},
	{service.UnitProperty{Name: "IOReadBandwidthMax", Value: service.DeviceSettingListValue{{Path: "/dev/sda", Value: 1 << 20}}},
		"a(st)", []deviceSetting{{"/dev/sda", 1 << 20}}},
	{service.UnitProperty{Name: "AllowedCPUs", Value: service.BitmaskValue{0x0f, 0x01}}, "ay", []byte{0x0f, 0x01}},
	{service.UnitProperty{Name: "IPAddressDeny", Value: service.IPPrefixListValue{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fe80::/64"), netip.MustParsePrefix("::ffff:1.2.3.4/128")}},
		"a(iayu)", []ipPrefix{
			{2, []byte{10, 1, 0, 0}, 16},
			{10, netip.MustParseAddr("fe80::").AsSlice(), 64},
			{10, netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), 128},
		}},
}

// Each value type encodes to exactly the signature the core's whitelist
// records for its property.
func TestToVariantSignatures(t *testing.T) {
	for _, tc := range typedProperties {
		v, err := toVariant(tc.prop)
		if err != nil {
			t.Errorf("%s: %v", tc.prop.Name, err)
			continue
		}
		whitelist, _ := service.ScopePropertySignature(tc.prop.Name)
		if got := v.Signature().String(); got != tc.sig || got != whitelist || got != tc.prop.Value.Signature() {
			t.Errorf("%s encoded as %s, want %s (whitelist %s)", tc.prop.Name, got, tc.sig, whitelist)
		}
	}
}

// The properties reach the manager with those signatures and their values.
func TestCreateScopeTypedProperties(t *testing.T) {
	c, f, _ := setup(t)
	pid, _ := leader(t)
	req := service.ScopeRequest{Unit: "machine-typed.scope", Slice: "machine.slice", Description: "Container typed", LeaderPID: pid, LeaderPIDFD: -1}
	for _, tc := range typedProperties {
		req.Properties = append(req.Properties, tc.prop)
	}
	if err := c.CreateScope(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	props := f.props[0]
	f.mu.Unlock()
	fixed := 7 // Slice, Description, PIDs, Delegate, CollectMode, AddRef, TasksMax
	if len(props) != fixed+len(typedProperties) {
		t.Fatalf("%d properties sent: %v", len(props), propSummary(props))
	}
	for i, tc := range typedProperties {
		p := props[fixed+i]
		if p.Name != tc.prop.Name || p.Value.Signature().String() != tc.sig {
			t.Errorf("property %d: %s:%s, want %s:%s", i, p.Name, p.Value.Signature(), tc.prop.Name, tc.sig)
			continue
		}
		got := reflect.New(reflect.TypeOf(tc.want))
		if err := dbus.Store([]any{p.Value.Value()}, got.Interface()); err != nil {
			t.Errorf("%s: decode %v: %v", p.Name, p.Value, err)
			continue
		}
		if !reflect.DeepEqual(got.Elem().Interface(), tc.want) {
			t.Errorf("%s = %#v, want %#v", p.Name, got.Elem().Interface(), tc.want)
		}
	}
}
