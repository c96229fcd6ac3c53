package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// IDMapLine is one line of a uid_map/gid_map file.
type IDMapLine struct{ Inner, Outer, Count uint32 }

// IDMap is a parsed uid_map/gid_map.
type IDMap []IDMapLine

// ParseIDMap parses the contents of /proc/PID/{uid,gid}_map.
func ParseIDMap(data []byte) (IDMap, error) {
	m := IDMap{}
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %d: want 3 fields, got %d: %w", n+1, len(f), syscall.EINVAL)
		}
		var v [3]uint64
		for i := range f {
			x, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %d: bad number %q: %w", n+1, f[i], syscall.EINVAL)
			}
			v[i] = x
		}
		if v[2] == 0 || v[0]+v[2] > 1<<32 || v[1]+v[2] > 1<<32 {
			return nil, fmt.Errorf("id map line %d: bad range: %w", n+1, syscall.EINVAL)
		}
		m = append(m, IDMapLine{Inner: uint32(v[0]), Outer: uint32(v[1]), Count: uint32(v[2])})
	}
	return m, nil
}

var identityMap = IDMap{{Inner: 0, Outer: 0, Count: 4294967295}}

// ownUserNS is the identity of our own user namespace (dev, inode).
var ownUserNS = sync.OnceValue(func() [2]uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &st) != nil {
		return [2]uint64{}
	}
	return [2]uint64{st.Dev, st.Ino}
})

// ReadIDMaps reads the uid and gid maps of the process' user namespace.
func ReadIDMaps(p *PidRef) (uids, gids IDMap, err error) {
	// A process in our own user namespace maps ids as we do: when that is the
	// initial namespace, the identity. One stat instead of two file reads.
	var st unix.Stat_t
	if own := ownUserNS(); own != [2]uint64{} && unix.Stat(fmt.Sprintf("/proc/%d/ns/user", p.PID), &st) == nil &&
		st.Dev == own[0] && st.Ino == own[1] && initialUserNS() {
		if err := p.Verify(); err != nil {
			return nil, nil, err
		}
		return identityMap, identityMap, nil
	}
	u, uerr := readProcFile(fmt.Sprintf("/proc/%d/uid_map", p.PID))
	g, gerr := readProcFile(fmt.Sprintf("/proc/%d/gid_map", p.PID))
	switch {
	case errors.Is(uerr, fs.ErrNotExist) && errors.Is(gerr, fs.ErrNotExist):
		uids, gids = append(IDMap(nil), identityMap...), append(IDMap(nil), identityMap...)
	case uerr != nil:
		return nil, nil, fmt.Errorf("reading uid_map of pid %d: %w", p.PID, uerr)
	case gerr != nil:
		return nil, nil, fmt.Errorf("reading gid_map of pid %d: %w", p.PID, gerr)
	default:
		if uids, err = ParseIDMap(u); err != nil {
			return nil, nil, err
		}
		if gids, err = ParseIDMap(g); err != nil {
			return nil, nil, err
		}
	}
	if err := p.Verify(); err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}

// ToHost maps an ID inside the namespace to the host.
func (m IDMap) ToHost(inner uint32) (uint32, bool) {
	for _, l := range m {
		if inner >= l.Inner && inner-l.Inner < l.Count {
			return l.Outer + (inner - l.Inner), true
		}
	}
	return 0, false
}

// FromHost maps a host ID into the namespace, ignoring lines that map onto
// host ID 0.
func (m IDMap) FromHost(host uint32) (uint32, bool) {
	for _, l := range m {
		if l.Outer == 0 {
			continue
		}
		if host >= l.Outer && host-l.Outer < l.Count {
			return l.Inner + (host - l.Outer), true
		}
	}
	return 0, false
}

// Shift returns the host base of a simple "0 base count>=65534" map; the
// identity map reports (0, true).
func (m IDMap) Shift() (uint32, bool) {
	if len(m) != 1 || m[0].Inner != 0 || m[0].Count < 65534 {
		return 0, false
	}
	return m[0].Outer, true
}

// initialUserNS reports whether we run in the initial user namespace, where the
// maps are the identity.
var initialUserNS = sync.OnceValue(func() bool {
	data, err := readProcFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	m, err := ParseIDMap(data)
	return err == nil && len(m) == 1 && m[0] == identityMap[0]
})
