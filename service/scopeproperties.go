package service

import "strings"

// scopePropertyNames are the properties a client may set on the scope machined
// creates for its machine. Upstream hands the caller's array to the service
// manager unchecked; we accept what real clients send (nspawn: its device
// policy, kill settings, controller and the resource limits of --property= and
// .nspawn files; libvirt: After, Before) and refuse the rest, so nobody can
// override what the daemon itself sets: the leader (PIDs, PIDFDs), Delegate,
// User, AddRef, CollectMode. Description is harmless and allowed.
var scopePropertyNames = map[string]bool{
	"Description": true, "Controller": true, "DevicePolicy": true, "DeviceAllow": true,
	"KillSignal": true, "KillMode": true, "FinalKillSignal": true, "SendSIGKILL": true,
	"SendSIGHUP": true, "TimeoutStopUSec": true,
	"After": true, "Before": true, "Wants": true, "Requires": true, "BindsTo": true,
	"PartOf": true, "Conflicts": true, "RequiresMountsFor": true,
	"CPUAccounting": true, "CPUWeight": true, "StartupCPUWeight": true,
	"CPUShares": true, "StartupCPUShares": true, "CPUQuotaPerSecUSec": true,
	"CPUQuotaPeriodUSec": true, "AllowedCPUs": true, "AllowedMemoryNodes": true,
	"MemoryAccounting": true, "MemoryMin": true, "MemoryLow": true, "MemoryHigh": true,
	"MemoryMax": true, "MemorySwapMax": true, "MemoryLimit": true,
	"TasksAccounting": true, "TasksMax": true,
	"IOAccounting": true, "IOWeight": true, "StartupIOWeight": true,
	"IODeviceWeight": true, "IOReadBandwidthMax": true, "IOWriteBandwidthMax": true,
	"IOReadIOPSMax": true, "IOWriteIOPSMax": true,
	"BlockIOAccounting": true, "BlockIOWeight": true,
	"IPAccounting": true, "IPAddressAllow": true, "IPAddressDeny": true,
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
		if !scopePropertyNames[p.Name] {
			return invalidArg("scopeProperties", "unsupported scope property %q", p.Name)
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
