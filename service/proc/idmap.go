package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"syscall"

	"github.com/machined-go/machined/internal/quicksys"
)

// IDMapLine is one line of a uid_map or gid_map: Count IDs starting at Inner
// inside the namespace are Count IDs starting at Outer in the parent.
type IDMapLine struct{ Inner, Outer, Count uint32 }

// IDMap is a parsed uid_map or gid_map, in file order.
type IDMap []IDMapLine

// fullRange is the count of the identity map: every ID but (uid_t)-1.
const fullRange = 4294967295

// identity returns a fresh identity map, so callers never alias each other.
func identity() IDMap { return IDMap{{Inner: 0, Outer: 0, Count: fullRange}} }

// ParseIDMap parses the contents of /proc/PID/uid_map or gid_map: lines of
// three whitespace-separated decimal numbers "inner outer count". Lines with a
// zero count, or whose inner or outer range runs past 2^32, are rejected, as is
// anything that is not such a line. Blank lines are skipped.
func ParseIDMap(data []byte) (IDMap, error) {
	m := IDMap{}
	n := 0
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		n++
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %d: want 3 fields, got %d: %w", n, len(f), syscall.EINVAL)
		}
		var v [3]uint64
		for i := range f {
			x, err := strconv.ParseUint(string(f[i]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %d: bad number %q: %w", n, f[i], syscall.EINVAL)
			}
			v[i] = x
		}
		if v[2] == 0 {
			return nil, fmt.Errorf("id map line %d: zero count: %w", n, syscall.EINVAL)
		}
		if v[0]+v[2] > 1<<32 || v[1]+v[2] > 1<<32 {
			return nil, fmt.Errorf("id map line %d: range overflows 32 bits: %w", n, syscall.EINVAL)
		}
		m = append(m, IDMapLine{Inner: uint32(v[0]), Outer: uint32(v[1]), Count: uint32(v[2])})
	}
	return m, nil
}

// ReadIDMaps reads the uid_map and gid_map of the process' user namespace and
// checks the pidfd afterwards. A kernel without user namespaces has no map
// files; that reads as the identity.
func ReadIDMaps(p *PidRef) (uids, gids IDMap, err error) {
	if uids, gids, err = ReadIDMapsUnverified(p); err != nil {
		return nil, nil, err
	}
	if err := p.Verify(); err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}

// ReadIDMapsUnverified is ReadIDMaps without the pidfd check: for a caller that
// finds p alive afterwards anyway (Register does, before it publishes), which
// proves the files read were p's and not those of a later process with its PID.
func ReadIDMapsUnverified(p *PidRef) (uids, gids IDMap, err error) {
	// A process in our own user namespace, when that is the initial one, maps
	// IDs as the identity: one readlink instead of two file reads.
	if inInitialUserNS(p.PID) {
		return identity(), identity(), nil
	}
	base := "/proc/" + strconv.Itoa(p.PID) + "/"
	var uperr, gperr error // parse errors
	uerr := scanProcFile(base+"uid_map", func(b []byte) { uids, uperr = ParseIDMap(b) })
	gerr := scanProcFile(base+"gid_map", func(b []byte) { gids, gperr = ParseIDMap(b) })
	switch {
	case errors.Is(uerr, fs.ErrNotExist) && errors.Is(gerr, fs.ErrNotExist):
		// No userns support, or the process is gone: Verify (or the
		// caller's liveness check) tells which.
		uids, gids = identity(), identity()
	case uerr != nil:
		return nil, nil, p.gone(fmt.Errorf("read uid_map of pid %d: %w", p.PID, uerr))
	case gerr != nil:
		return nil, nil, p.gone(fmt.Errorf("read gid_map of pid %d: %w", p.PID, gerr))
	case uperr != nil:
		return nil, nil, fmt.Errorf("uid_map of pid %d: %w", p.PID, uperr)
	case gperr != nil:
		return nil, nil, fmt.Errorf("gid_map of pid %d: %w", p.PID, gperr)
	}
	return uids, gids, nil
}

// ownUserNS names our user namespace ("user:[inode]"), "" when unknown.
var ownUserNS = sync.OnceValue(func() string { return userNSLink("self") })

// userNSLink reads /proc/<pid>/ns/user; the link's text names the namespace.
func userNSLink(pid string) string {
	var buf [64]byte
	n, err := quicksys.Readlink("/proc/"+pid+"/ns/user", buf[:])
	if err != nil || n == len(buf) {
		return ""
	}
	return string(buf[:n])
}

// weAreInitialUserNS reports whether our own uid_map is the identity, i.e. we
// run in the initial user namespace.
var weAreInitialUserNS = sync.OnceValue(func() bool {
	data, err := readProcFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	m, err := ParseIDMap(data)
	return err == nil && len(m) == 1 && m.Identity()
})

// inInitialUserNS reports whether pid shares our user namespace and that is the
// initial one. False when unsure.
func inInitialUserNS(pid int) bool {
	own := ownUserNS()
	if own == "" || !weAreInitialUserNS() {
		return false
	}
	return userNSLinkIs(pid, own)
}

// userNSLinkIs reports whether /proc/<pid>/ns/user reads as link. It copies
// neither the path nor the link's text to the heap: every container
// registration asks.
func userNSLinkIs(pid int, link string) bool {
	var pb [32]byte
	p := append(pb[:0], "/proc/"...)
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/ns/user"...)
	var buf [64]byte
	n, err := quicksys.Readlink(string(p), buf[:])
	return err == nil && n < len(buf) && string(buf[:n]) == link
}

// ToHost translates an ID inside the namespace to the host (MapFromMachine*): the
// first line whose inner range contains it wins.
func (m IDMap) ToHost(inner uint32) (uint32, bool) {
	for _, l := range m {
		if inner >= l.Inner && inner-l.Inner < l.Count {
			return l.Outer + (inner - l.Inner), true
		}
	}
	return 0, false
}

// FromHost translates a host ID into the namespace (MapToMachine*). Lines with
// Outer 0 are skipped: identity and non-userns ranges never "own" host IDs,
// which keeps a plain container from claiming every host user.
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

// Identity reports whether the map translates nothing: the single line
// "0 0 4294967295" of a process outside any user namespace, or no lines (no
// map known).
func (m IDMap) Identity() bool {
	return len(m) == 0 || len(m) == 1 && m[0] == IDMapLine{Inner: 0, Outer: 0, Count: fullRange}
}

// Shift is the UID/GID shift of one map: a single line with inner 0 and a
// count of at least 65534 (so nobody is mapped) yields its outer base; the
// identity line yields 0. Anything else is a complex mapping: (0, false).
//
// An empty map is complex too: a user namespace whose maps were never written
// reads as empty, and there no ID is mapped at all.
func (m IDMap) Shift() (uint32, bool) {
	if len(m) != 1 || m[0].Inner != 0 || m[0].Count < 65534 {
		return 0, false
	}
	return m[0].Outer, true
}

// InHostUserNS reports whether p runs in our own user namespace, the one root
// owns. False when that cannot be told: callers use it to refuse, so unsure must
// mean "not proven safe" only where they treat false as the dangerous answer.
func (p *PidRef) InHostUserNS() (bool, error) {
	own := ownUserNS()
	if own == "" {
		return false, fmt.Errorf("cannot read our own user namespace")
	}
	theirs := userNSLink(strconv.Itoa(p.PID))
	if err := p.Verify(); err != nil {
		return false, err
	}
	if theirs == "" {
		return false, fmt.Errorf("cannot read the user namespace of pid %d", p.PID)
	}
	return theirs == own, nil
}
