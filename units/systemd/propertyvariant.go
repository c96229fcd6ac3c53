package systemd

import (
	"fmt"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
)

// Address families of the a(iayu) address items, as the service manager reads them.
const (
	afInet  = int32(syscall.AF_INET)
	afInet6 = int32(syscall.AF_INET6)
)

// deviceAccess, deviceSetting and ipPrefix are the Go shapes godbus encodes as
// the structs (ss), (st) and (iayu).
type deviceAccess struct{ Path, Access string }

type deviceSetting struct {
	Path  string
	Value uint64
}

type ipPrefix struct {
	Family    int32
	Address   []byte
	PrefixLen uint32
}

// toVariant encodes a scope property for StartTransientUnit. The variant must
// carry exactly the signature the core's whitelist records for the name: the
// manager refuses a property of another type, and the core only let through
// values of that type, so a mismatch here is a request that bypassed the core.
func toVariant(p service.UnitProperty) (dbus.Variant, error) {
	want, ok := service.ScopePropertySignature(p.Name)
	if !ok {
		return dbus.Variant{}, fmt.Errorf("scope property %s is not on the whitelist: %w", p.Name, syscall.EINVAL)
	}
	var v dbus.Variant
	switch val := p.Value.(type) {
	case service.StringValue:
		v = dbus.MakeVariant(string(val))
	case service.BoolValue:
		v = dbus.MakeVariant(bool(val))
	case service.Uint64Value:
		v = dbus.MakeVariant(uint64(val))
	case service.Int32Value:
		v = dbus.MakeVariant(int32(val))
	case service.StringListValue:
		v = dbus.MakeVariant([]string(val))
	case service.DeviceAccessListValue:
		out := make([]deviceAccess, len(val))
		for i, d := range val {
			out[i] = deviceAccess{d.Path, d.Access}
		}
		v = dbus.MakeVariant(out)
	case service.DeviceSettingListValue:
		out := make([]deviceSetting, len(val))
		for i, d := range val {
			out[i] = deviceSetting{d.Path, d.Value}
		}
		v = dbus.MakeVariant(out)
	case service.BitmaskValue:
		v = dbus.MakeVariant([]byte(val))
	case service.IPPrefixListValue:
		out := make([]ipPrefix, len(val))
		for i, pfx := range val {
			family := afInet6
			if pfx.Addr().Is4() {
				family = afInet
			}
			out[i] = ipPrefix{family, pfx.Addr().AsSlice(), uint32(pfx.Bits())}
		}
		v = dbus.MakeVariant(out)
	default:
		return dbus.Variant{}, fmt.Errorf("scope property %s has no value: %w", p.Name, syscall.EINVAL)
	}
	if got := v.Signature().String(); got != want {
		return dbus.Variant{}, fmt.Errorf("scope property %s is of type %s, the manager reads %s: %w", p.Name, got, want, syscall.EINVAL)
	}
	return v, nil
}
