package machine1

import (
	"context"
	"net/netip"
	"reflect"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// recordingUnits is a unit back end that keeps the scope requests it gets.
type recordingUnits struct {
	mu   sync.Mutex
	reqs []service.ScopeRequest
}

func (u *recordingUnits) Name() string { return "recording" }

func (u *recordingUnits) CreateScope(_ context.Context, req service.ScopeRequest) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reqs = append(u.reqs, req)
	return nil
}

func (u *recordingUnits) Stop(context.Context, string) error { return nil }

func (u *recordingUnits) Kill(context.Context, string, string, syscall.Signal) error { return nil }

func (u *recordingUnits) Release(string) {}

func (u *recordingUnits) requests() []service.ScopeRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]service.ScopeRequest(nil), u.reqs...)
}

// What nspawn 252 and libvirt send in CreateMachine's scope properties reaches
// the unit back end as typed values; a value of another type than its property
// takes is InvalidArgs naming the property and its type, before any scope is
// asked for.
func TestCreateMachineScopePropertyTypes(t *testing.T) {
	units := &recordingUnits{}
	e := newEnvUnits(t, units)
	pid := uint32(sleeper(t).Process.Pid)

	props := []keyValue{
		{"Slice", dbus.MakeVariant("machine.slice")},
		{"DevicePolicy", dbus.MakeVariant("closed")},
		{"DeviceAllow", dbus.MakeVariant([]struct{ Path, Access string }{{"/dev/net/tun", "rwm"}, {"char-pts", "rw"}})},
		{"KillSignal", dbus.MakeVariant(int32(37))},
		{"After", dbus.MakeVariant([]string{"libvirtd.service"})},
		{"TasksMax", dbus.MakeVariant(uint64(4096))},
		{"SendSIGHUP", dbus.MakeVariant(true)},
		{"IODeviceWeight", dbus.MakeVariant([]struct {
			Path   string
			Weight uint64
		}{{"/dev/sda", 200}})},
		{"AllowedCPUs", dbus.MakeVariant([]byte{0x05})},
		{"Wants", dbus.MakeVariant([]string{})},
		{"IOWriteIOPSMax", dbus.MakeVariant([]struct {
			Path  string
			Value uint64
		}{})},
		{"IPAddressDeny", dbus.MakeVariant([]struct {
			Family    int32
			Address   []byte
			PrefixLen uint32
		}{{syscall.AF_INET, []byte{0, 0, 0, 0}, 0}, {syscall.AF_INET6, make([]byte, 16), 0}})},
	}
	if err := e.manager("CreateMachine", "typed", []byte{}, "", "container", pid, "", props).Store(new(dbus.ObjectPath)); err != nil {
		t.Fatal(err)
	}
	reqs := units.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d scope requests, want 1", len(reqs))
	}
	want := []service.UnitProperty{
		{Name: "DevicePolicy", Value: service.StringValue("closed")},
		{Name: "DeviceAllow", Value: service.DeviceAccessListValue{{Path: "/dev/net/tun", Access: "rwm"}, {Path: "char-pts", Access: "rw"}}},
		{Name: "KillSignal", Value: service.Int32Value(37)},
		{Name: "After", Value: service.StringListValue{"libvirtd.service"}},
		{Name: "TasksMax", Value: service.Uint64Value(4096)},
		{Name: "SendSIGHUP", Value: service.BoolValue(true)},
		{Name: "IODeviceWeight", Value: service.DeviceSettingListValue{{Path: "/dev/sda", Value: 200}}},
		{Name: "AllowedCPUs", Value: service.BitmaskValue{0x05}},
		{Name: "Wants", Value: service.StringListValue{}},
		{Name: "IOWriteIOPSMax", Value: service.DeviceSettingListValue{}},
		{Name: "IPAddressDeny", Value: service.IPPrefixListValue{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
	}
	if got := reqs[0]; got.Slice != "machine.slice" || !reflect.DeepEqual(got.Properties, want) {
		t.Fatalf("scope request slice %q properties\n%#v\nwant\n%#v", got.Slice, got.Properties, want)
	}

	for _, tc := range []struct {
		prop keyValue
		msg  string
	}{
		{keyValue{"KillSignal", dbus.MakeVariant("SIGTERM")}, `Scope property "KillSignal" takes type "i", not "s"`},
		{keyValue{"TasksMax", dbus.MakeVariant(uint32(10))}, `"TasksMax" has type "u"`},
		{keyValue{"After", dbus.MakeVariant("x.service")}, `Scope property "After" takes type "as", not "s"`},
		{keyValue{"DeviceAllow", dbus.MakeVariant([]string{"/dev/null"})}, `Scope property "DeviceAllow" takes type "a(ss)", not "as"`},
		{keyValue{"DevicePolicy", dbus.MakeVariant(dbus.MakeVariant("closed"))}, `"DevicePolicy" has type "v"`},
		{keyValue{"IPAddressAllow", dbus.MakeVariant([]struct {
			Family    int32
			Address   []byte
			PrefixLen uint32
		}{{syscall.AF_INET, []byte{10, 0, 0, 0}, 33}})}, `"IPAddressAllow": invalid address prefix`},
		{keyValue{"IPAddressAllow", dbus.MakeVariant([]struct {
			Family    int32
			Address   []byte
			PrefixLen uint32
		}{{syscall.AF_INET6, []byte{10, 0, 0, 0}, 8}})}, `"IPAddressAllow": address family 10 with a 4-byte address`},
	} {
		wantErr(t, e.manager("CreateMachine", "wrongtype", []byte{}, "", "container", pid, "", []keyValue{tc.prop}), ErrInvalidArgs, tc.msg)
	}
	if n := len(units.requests()); n != 1 {
		t.Fatalf("%d scope requests after refused ones, want 1", n)
	}
}
