package service

import "net/netip"

// PropertyValue is the value of one scope property: one of the types below and
// no other (the unexported method closes the set). Each type stands for exactly
// one D-Bus signature, the one the service manager reads for the properties
// that take it, so a back end that speaks D-Bus can encode it without guessing
// and the core can check a value against its property without knowing D-Bus.
//
//	Go type                 D-Bus   properties (see scopePropertySignatures)
//	StringValue             s       Description, Controller, DevicePolicy, KillMode
//	BoolValue               b       SendSIGKILL, SendSIGHUP, *Accounting
//	Uint64Value             t       TimeoutStopUSec, weights, CPU quotas, Memory*, TasksMax
//	Int32Value              i       KillSignal, FinalKillSignal
//	StringListValue         as      After, Before, Wants, …, RequiresMountsFor
//	DeviceAccessListValue   a(ss)   DeviceAllow
//	DeviceSettingListValue  a(st)   IODeviceWeight, IO{Read,Write}{Bandwidth,IOPS}Max
//	BitmaskValue            ay      AllowedCPUs, AllowedMemoryNodes
//	IPPrefixListValue       a(iayu) IPAddressAllow, IPAddressDeny
type PropertyValue interface {
	// Signature is the D-Bus type signature the value stands for.
	Signature() string
	propertyValue()
}

// StringValue is a text property.
type StringValue string

// BoolValue is a yes/no property.
type BoolValue bool

// Uint64Value is an unsigned property: a size, a weight, a count or a duration
// in microseconds, as the property defines.
type Uint64Value uint64

// Int32Value is a signed property; the whitelisted ones are signal numbers.
type Int32Value int32

// StringListValue is a list of names: units, or paths for RequiresMountsFor.
type StringListValue []string

// DeviceAccess grants access to a device node or class: Path is a node
// ("/dev/net/tun") or a class ("char-pts"), Access a subset of "rwm".
type DeviceAccess struct {
	Path   string
	Access string
}

// DeviceAccessListValue is a list of device grants.
type DeviceAccessListValue []DeviceAccess

// DeviceSetting is a number applied to one block device: a weight, a bandwidth
// in bytes per second or a rate in operations per second.
type DeviceSetting struct {
	Path  string
	Value uint64
}

// DeviceSettingListValue is a list of per-device settings.
type DeviceSettingListValue []DeviceSetting

// BitmaskValue is a set of CPUs or memory nodes: bit i (byte i/8, bit i%8,
// least significant first) set means number i is in the set.
type BitmaskValue []byte

// IPPrefixListValue is a list of IPv4 or IPv6 networks. An IPv4-mapped IPv6
// address stays IPv6.
type IPPrefixListValue []netip.Prefix

func (StringValue) Signature() string            { return "s" }
func (BoolValue) Signature() string              { return "b" }
func (Uint64Value) Signature() string            { return "t" }
func (Int32Value) Signature() string             { return "i" }
func (StringListValue) Signature() string        { return "as" }
func (DeviceAccessListValue) Signature() string  { return "a(ss)" }
func (DeviceSettingListValue) Signature() string { return "a(st)" }
func (BitmaskValue) Signature() string           { return "ay" }
func (IPPrefixListValue) Signature() string      { return "a(iayu)" }

func (StringValue) propertyValue()            {}
func (BoolValue) propertyValue()              {}
func (Uint64Value) propertyValue()            {}
func (Int32Value) propertyValue()             {}
func (StringListValue) propertyValue()        {}
func (DeviceAccessListValue) propertyValue()  {}
func (DeviceSettingListValue) propertyValue() {}
func (BitmaskValue) propertyValue()           {}
func (IPPrefixListValue) propertyValue()      {}
