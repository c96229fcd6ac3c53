package service

import "strings"

// scopePropertySignatures are the properties a client may set on the scope
// machined creates for its machine, each with the D-Bus signature the service
// manager reads for it (and so the PropertyValue type it must have). Upstream
// hands the caller's array to the service manager unchecked; we accept what
// real clients send (nspawn: its device policy, kill settings, controller and
// the resource limits of --property= and .nspawn files; libvirt: After,
// Before) and refuse the rest, so nobody can override what the daemon itself
// sets: the leader (PIDs, PIDFDs), Delegate, User, AddRef, CollectMode.
// Description is harmless and allowed.
var scopePropertySignatures = map[string]string{
	"Description": "s", "Controller": "s", "DevicePolicy": "s", "DeviceAllow": "a(ss)",
	"KillSignal": "i", "KillMode": "s", "FinalKillSignal": "i", "SendSIGKILL": "b",
	"SendSIGHUP": "b", "TimeoutStopUSec": "t",
	"After": "as", "Before": "as", "Wants": "as", "Requires": "as", "BindsTo": "as",
	"PartOf": "as", "Conflicts": "as", "RequiresMountsFor": "as",
	"CPUAccounting": "b", "CPUWeight": "t", "StartupCPUWeight": "t",
	"CPUShares": "t", "StartupCPUShares": "t", "CPUQuotaPerSecUSec": "t",
	"CPUQuotaPeriodUSec": "t", "AllowedCPUs": "ay", "AllowedMemoryNodes": "ay",
	"MemoryAccounting": "b", "MemoryMin": "t", "MemoryLow": "t", "MemoryHigh": "t",
	"MemoryMax": "t", "MemorySwapMax": "t", "MemoryLimit": "t",
	"TasksAccounting": "b", "TasksMax": "t",
	"IOAccounting": "b", "IOWeight": "t", "StartupIOWeight": "t",
	"IODeviceWeight": "a(st)", "IOReadBandwidthMax": "a(st)", "IOWriteBandwidthMax": "a(st)",
	"IOReadIOPSMax": "a(st)", "IOWriteIOPSMax": "a(st)",
	"BlockIOAccounting": "b", "BlockIOWeight": "t",
	"IPAccounting": "b", "IPAddressAllow": "a(iayu)", "IPAddressDeny": "a(iayu)",
}

// ScopePropertySignature returns the D-Bus signature of a whitelisted scope
// property, for back ends that encode values for the service manager.
func ScopePropertySignature(name string) (string, bool) {
	sig, ok := scopePropertySignatures[name]
	return sig, ok
}

// DefaultMachineSlice is where machine scopes go unless the client names a slice.
const DefaultMachineSlice = "machine.slice"

// validateScope checks the slice and the extra properties of a unit request.
// The slice is given separately (typed) because backends act on it themselves.
func validateScope(slice string, props []UnitProperty) error {
	if slice != "" && !ValidSliceName(slice) {
		return invalidArg("Slice", "invalid slice unit name %q", slice)
	}
	if slice == "-.slice" {
		return invalidArg("Slice", "machines may not be placed in the root slice -.slice")
	}
	if len(props) > MaxScopeProperties {
		return invalidArg("scopeProperties", "more than %d scope properties", MaxScopeProperties)
	}
	for _, p := range props {
		if p.Name == "Slice" {
			return invalidArg("Slice", "Slice must be given once, as a string")
		}
		if err := validateScopeProperty(p); err != nil {
			return err
		}
	}
	return nil
}

// validateScopeProperty checks one property: its name is on the whitelist and
// its value has the type the service manager reads for it, so a back end never
// sends a value of the wrong type under a name it accepts.
func validateScopeProperty(p UnitProperty) error {
	want, ok := scopePropertySignatures[p.Name]
	if !ok {
		return invalidArg("scopeProperties", "unsupported scope property %q", p.Name)
	}
	if p.Value == nil {
		return invalidArg("scopeProperties", "scope property %q has no value, want type %q", p.Name, want)
	}
	if got := p.Value.Signature(); got != want {
		return invalidArg("scopeProperties", "scope property %q takes type %q, not %q", p.Name, want, got)
	}
	if prefixes, ok := p.Value.(IPPrefixListValue); ok {
		for _, pfx := range prefixes {
			if !pfx.IsValid() {
				return invalidArg("scopeProperties", "scope property %q: invalid address prefix %s", p.Name, pfx)
			}
		}
	}
	return nil
}

// ValidSliceName reports whether s is a valid slice unit name: "-.slice", or
// dash-separated non-empty parts of unit name characters (no template '@')
// ending in ".slice", at most 255 bytes.
func ValidSliceName(s string) bool {
	if s == "-.slice" {
		return true
	}
	prefix, ok := strings.CutSuffix(s, ".slice")
	if !ok || prefix == "" || len(s) > 255 || strings.HasPrefix(prefix, ".") {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; !unitNameSafe(c) && c != '-' && c != '\\' {
			return false
		}
	}
	return !strings.HasPrefix(prefix, "-") && !strings.HasSuffix(prefix, "-") && !strings.Contains(prefix, "--")
}
