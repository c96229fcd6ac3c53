package service

import (
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/machined-go/machined/service/persist"
)

// ValidLookupName reports whether a lookup may name s: a machine name
// (persist.ValidMachineName, the one home of that rule, since state-file
// readers apply it too) or ".host", which lookups accept and registration never
// does.
func ValidLookupName(s string) bool { return s == HostName || persist.ValidMachineName(s) }

func validateName(field, name string) error {
	if name == "" {
		return invalidArg(field, "machine name is empty")
	}
	if !persist.ValidMachineName(name) {
		return invalidArg(field, "invalid machine name %q", name)
	}
	return nil
}

// parseRegisterClass maps a class string to a registrable class. "host" names
// only the synthesized .host machine and is an invalid class to register, as
// upstream answers on both transports.
func parseRegisterClass(s string) (Class, error) {
	switch Class(s) {
	case ClassContainer, ClassVM:
		return Class(s), nil
	case ClassHost:
		return "", invalidArg("class", "invalid machine class parameter")
	case "":
		return "", invalidArg("class", "class is empty")
	}
	return "", invalidArg("class", "invalid machine class %q", s)
}

// Bounds of a request, so that no client can make the registry, or a state file,
// grow beyond what a restart reads back (persist.MaxFileSize): free text and paths
// are at most maxPathLen bytes (PATH_MAX less its NUL), a machine has at most
// MaxNetIf network interfaces, a scope at most MaxScopeProperties properties.
// A shell opened in a machine gets at most MaxOpenArgs arguments and
// MaxOpenEnvironment environment entries (newer upstream caps the environment
// too); the front ends check those while decoding.
const (
	maxPathLen         = 4095
	MaxNetIf           = 256
	MaxScopeProperties = 64
	MaxOpenArgs        = 1024
	MaxOpenEnvironment = 1024
)

// validAbsolutePath accepts an absolute path without ".." components: the paths
// a client registers (root directory, ssh key) are later resolved by others, and
// one that climbs out of where it claims to be is not a path we vouch for.
func validAbsolutePath(p string) bool {
	if !filepath.IsAbs(p) || !validFreeText(p) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > 255 || c == ".." {
			return false
		}
	}
	return true
}

// validFreeText is what we accept for free-form strings (service, ssh address,
// control address): bounded, UTF-8, no control characters, so nothing can break a
// state file line or a log line.
func validFreeText(s string) bool {
	if len(s) > maxPathLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ValidID is systemd's rule for uids and gids: every 32-bit value except
// 4294967295, which libc calls use as "no id", and 65535, the same in the days of
// 16-bit ids. Such an id is never mapped or synthesized, whatever a container's
// map says. 4294967294 is valid, as upstream has it.
func ValidID(id uint32) bool { return id != 65535 && id != 4294967295 }

// ValidSignal reports whether sig is a signal number Kill accepts (1..64).
func ValidSignal(sig int) bool { return sig >= 1 && sig < 65 }

// regularVSockCID excludes VMADDR_CID_ANY, the hypervisor (0), the local (1) and
// the host (2) CIDs, which no machine can own.
func regularVSockCID(cid uint32) bool { return cid >= 3 && cid != VSockCIDAny }

// validOperationPath is upstream's rule for the paths of a copy or bind mount:
// absolute, at most maxPathLen bytes, no component over 255 bytes, no NUL; with
// normalized (the D-Bus methods) also no "." or ".." component and no "//".
// The last component must be a file name: "/" names no entry to copy or mount
// on.
func validOperationPath(p string, normalized bool) bool {
	if !strings.HasPrefix(p, "/") || len(p) > maxPathLen || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	comps := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	for i, c := range comps {
		if len(c) > 255 {
			return false
		}
		if normalized && (c == "." || c == ".." || c == "" && i < len(comps)-1) {
			return false
		}
	}
	last := comps[len(comps)-1]
	return last != "" && last != "." && last != ".."
}
