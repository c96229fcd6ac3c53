package machine1

import (
	"net/netip"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/service"
)

// scopePropertyValue converts one CreateMachine scope property's variant into
// the core's typed value, chosen by the variant's signature alone: which names
// take which type is the core's whitelist, checked there, so a property of the
// wrong type is refused with the type its name expects. A signature no
// whitelisted property has cannot be represented and is refused here.
func scopePropertyValue(name string, v dbus.Variant) (service.PropertyValue, error) {
	sig := v.Signature().String()
	bad := func() (service.PropertyValue, error) {
		return nil, errorf(ErrInvalidArgs, "Scope property %q has type %q, which no supported scope property takes", name, sig)
	}
	switch sig {
	case "s":
		var out string
		if v.Store(&out) != nil {
			return bad()
		}
		return service.StringValue(out), nil
	case "b":
		var out bool
		if v.Store(&out) != nil {
			return bad()
		}
		return service.BoolValue(out), nil
	case "t":
		var out uint64
		if v.Store(&out) != nil {
			return bad()
		}
		return service.Uint64Value(out), nil
	case "i":
		var out int32
		if v.Store(&out) != nil {
			return bad()
		}
		return service.Int32Value(out), nil
	case "as":
		var out []string
		if v.Store(&out) != nil {
			return bad()
		}
		return service.StringListValue(out), nil
	case "ay":
		var out []byte
		if v.Store(&out) != nil {
			return bad()
		}
		return service.BitmaskValue(out), nil
	case "a(ss)":
		var in []struct{ Path, Access string }
		if v.Store(&in) != nil {
			return bad()
		}
		out := make(service.DeviceAccessListValue, len(in))
		for i, d := range in {
			out[i] = service.DeviceAccess{Path: d.Path, Access: d.Access}
		}
		return out, nil
	case "a(st)":
		var in []struct {
			Path  string
			Value uint64
		}
		if v.Store(&in) != nil {
			return bad()
		}
		out := make(service.DeviceSettingListValue, len(in))
		for i, d := range in {
			out[i] = service.DeviceSetting{Path: d.Path, Value: d.Value}
		}
		return out, nil
	case "a(iayu)":
		return ipPrefixes(name, v)
	}
	return bad()
}

// ipPrefixes converts an a(iayu) list of (family, address bytes, prefix
// length). A family other than IPv4/IPv6, or an address of the wrong length
// for it, has no typed form; a prefix length too long for the family is kept
// (as an invalid prefix) for the core to refuse.
func ipPrefixes(name string, v dbus.Variant) (service.PropertyValue, error) {
	var in []struct {
		Family    int32
		Address   []byte
		PrefixLen uint32
	}
	if v.Store(&in) != nil {
		return nil, errorf(ErrInvalidArgs, "Scope property %q is not a list of addresses", name)
	}
	out := make(service.IPPrefixListValue, len(in))
	for i, a := range in {
		var addr netip.Addr
		switch {
		case a.Family == syscall.AF_INET && len(a.Address) == 4:
			addr = netip.AddrFrom4([4]byte(a.Address))
		case a.Family == syscall.AF_INET6 && len(a.Address) == 16:
			addr = netip.AddrFrom16([16]byte(a.Address))
		default:
			return nil, errorf(ErrInvalidArgs, "Scope property %q: address family %d with a %d-byte address", name, a.Family, len(a.Address))
		}
		bits := -1
		if a.PrefixLen <= 128 {
			bits = int(a.PrefixLen)
		}
		out[i] = netip.PrefixFrom(addr, bits)
	}
	return out, nil
}
