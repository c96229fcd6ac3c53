package images

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A versioned image is a directory NAME.v/ (or NAME.raw.v/) holding one entry per
// version, NAME_VERSION[_ARCH][+LEFT[-DONE]][.raw]; the image is the best entry.

// knownArchitectures are the architecture names an entry may carry.
var knownArchitectures = map[string]bool{
	"alpha": true, "arc": true, "arc-be": true, "arm": true, "arm64": true, "arm-be": true,
	"arm64-be": true, "cris": true, "ia64": true, "loongarch64": true, "m68k": true,
	"mips": true, "mips64": true, "mips-le": true, "mips64-le": true, "parisc": true,
	"parisc64": true, "ppc": true, "ppc64": true, "ppc-le": true, "ppc64-le": true,
	"riscv32": true, "riscv64": true, "s390": true, "s390x": true, "sh": true, "sh64": true,
	"sparc": true, "sparc64": true, "tilegx": true, "x86": true, "x86-64": true,
}

// localArchitectures lists, best first, the architectures this host runs; the
// empty string stands for an entry without one, accepted last.
var localArchitectures = func() []string {
	switch runtime.GOARCH {
	case "amd64":
		return []string{"x86-64", "x86", ""}
	case "386":
		return []string{"x86", ""}
	case "arm64":
		return []string{"arm64", ""}
	case "riscv64":
		return []string{"riscv64", ""}
	case "ppc64le":
		return []string{"ppc64-le", ""}
	case "s390x":
		return []string{"s390x", ""}
	case "loong64":
		return []string{"loongarch64", ""}
	}
	return []string{""}
}()

// noTries marks an entry without a tries counter: it counts as having tries left.
const noTries = ^uint64(0)

type versionCandidate struct {
	file      string
	version   string
	archIndex int
	triesLeft uint64
	triesDone uint64
}

// parseVersionEntry splits an entry of base's versioned directory, or reports
// false when it is not one of its versions.
func parseVersionEntry(file, base, suffix string) (versionCandidate, bool) {
	c := versionCandidate{file: file, triesLeft: noTries, triesDone: noTries}
	e, ok := strings.CutPrefix(file, base+"_")
	if !ok {
		return c, false
	}
	if e, ok = strings.CutSuffix(e, suffix); !ok {
		return c, false
	}
	if plus := strings.LastIndexByte(e, '+'); plus >= 0 {
		if left, done, ok := parseTries(e[plus+1:]); ok {
			c.triesLeft, c.triesDone = left, done
			e = e[:plus]
		}
	}
	arch := ""
	under := strings.LastIndexByte(e, '_')
	if under >= 0 && knownArchitectures[e[under+1:]] {
		arch = e[under+1:]
	}
	c.archIndex = -1
	for i, a := range localArchitectures {
		if a == arch {
			c.archIndex = i
			break
		}
	}
	if c.archIndex < 0 {
		return c, false // built for another architecture
	}
	if under >= 0 {
		e = e[:under]
	}
	if !validVersion(e) {
		return c, false
	}
	c.version = e
	return c, true
}

// parseTries parses the "LEFT" or "LEFT-DONE" after the '+' of a boot-counted
// entry.
func parseTries(s string) (left, done uint64, ok bool) {
	l, d, hasDone := strings.Cut(s, "-")
	if !allDigits(l) || (hasDone && !allDigits(d)) {
		return 0, 0, false
	}
	left, err := strconv.ParseUint(l, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	if hasDone {
		if done, err = strconv.ParseUint(d, 10, 32); err != nil {
			return 0, 0, false
		}
	}
	return left, done, true
}

func allDigits(s string) bool { return s != "" && spanOf(s, isDigit) == len(s) }

// better reports whether c is a better choice than best: tries left first, then
// the newer version, the preferred architecture, more tries left, fewer tries
// done, and the file name last so that the choice never depends on readdir order.
func (c versionCandidate) better(best versionCandidate) bool {
	d := cmpBool(c.triesLeft != 0, best.triesLeft != 0)
	if d == 0 {
		d = compareVersions(c.version, best.version)
	}
	if d == 0 {
		d = -cmp.Compare(c.archIndex, best.archIndex)
	}
	if d == 0 {
		d = cmp.Compare(c.triesLeft, best.triesLeft)
	}
	if d == 0 {
		d = -cmp.Compare(c.triesDone, best.triesDone)
	}
	if d == 0 {
		d = cmp.Compare(c.file, best.file)
	}
	return d >= 0
}

// pickVersion returns the path and stat of the best entry of the versioned
// directory vdir for the image base: a directory when suffix is "", else a
// regular file or block device ending in suffix. errNoVersion when no entry
// qualifies or the best one has the wrong type.
func pickVersion(vdir, base, suffix string) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return "", st, err
	}
	var best versionCandidate
	found := false
	for _, de := range entries {
		c, ok := parseVersionEntry(de.Name(), base, suffix)
		if !ok {
			continue
		}
		if !found || c.better(best) {
			best, found = c, true
		}
	}
	if !found {
		return "", st, fmt.Errorf("%s: %w", vdir, errNoVersion)
	}
	p := filepath.Join(vdir, best.file)
	if err := unix.Stat(p, &st); err != nil {
		return "", st, fmt.Errorf("stat %s: %w", p, err)
	}
	mode := st.Mode & unix.S_IFMT
	if suffix == "" && mode != unix.S_IFDIR || suffix != "" && mode != unix.S_IFREG && mode != unix.S_IFBLK {
		return "", st, fmt.Errorf("%s: %w", p, errNoVersion)
	}
	return p, st, nil
}
