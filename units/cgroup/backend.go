package cgroup

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
	"golang.org/x/sys/unix"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// maxSliceDepth bounds the search for units this backend did not create: units
// live at most this many slice levels below the root.
const maxSliceDepth = 4

// Backend implements service.Units on a cgroup v2 hierarchy. It is safe for
// concurrent use.
type Backend struct {
	// StopTimeout is the grace period between SIGTERM and SIGKILL in Stop; zero
	// means DefaultStopTimeout. Set it before the first call; it is not guarded.
	StopTimeout time.Duration

	root string // cgroup2 mount point, immutable
	log  *slog.Logger

	// fsMu serializes creating and removing directories, so a Release retry can
	// never remove a directory CreateScope just made and is about to fill, and
	// concurrent creations do not remove each other's fresh slice directories.
	// Lock order: fsMu before mu.
	fsMu sync.Mutex
	// slices are the slice directories this backend created, guarded by fsMu:
	// each goes again once its last scope is removed, so a client-named slice
	// does not outlive its machines.
	slices map[string]bool

	mu    sync.Mutex
	owned map[string]*ownedUnit // units this backend created, guarded by mu

	// stopping holds units with a Stop in progress, guarded by mu.
	stopping map[string]*stopState

	wg sync.WaitGroup // background stop/release goroutines (tests wait on it)

	noCgroupKill bool // tests: force the per-process SIGKILL path
}

// ownedUnit is a unit directory this backend created. Pointer identity tells a
// unit apart from a later one with the same name.
type ownedUnit struct {
	dir string
}

var _ service.Units = (*Backend)(nil)

// New returns a backend for the cgroup2 hierarchy mounted at root. It fails if
// root is not a cgroup2 mount. A nil logger discards logs.
func New(root string, logger *slog.Logger) (*Backend, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", root, err)
	}
	if int64(st.Type) != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("%s is not a cgroup2 mount (type %#x): %w", root, st.Type, syscall.ENOTSUP)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{
		root:     filepath.Clean(root),
		log:      logger,
		owned:    make(map[string]*ownedUnit),
		slices:   make(map[string]bool),
		stopping: make(map[string]*stopState),
	}, nil
}

// Name implements service.Units.
func (b *Backend) Name() string { return "cgroup" }

// Root returns the cgroup2 mount point the backend works on.
func (b *Backend) Root() string { return b.root }

func (b *Backend) stopTimeout() time.Duration {
	if b.StopTimeout > 0 {
		return b.StopTimeout
	}
	return DefaultStopTimeout
}

// errNoUnit says a unit has no cgroup directory.
func errNoUnit(unit string) error {
	return fmt.Errorf("unit %s has no cgroup: %w", unit, service.ErrNoSuchProcess)
}

// unitDir returns the cgroup directory of unit: the remembered one for units
// this backend created, otherwise the first <root>/<slices...>/<unit> found by a
// breadth-first walk through at most maxSliceDepth levels of *.slice directories.
// A unit with no directory gives an error wrapping fs.ErrNotExist.
func (b *Backend) unitDir(unit string) (string, error) {
	if !proc.ValidCgroupUnitName(unit) {
		return "", fmt.Errorf("invalid unit name %q: %w", unit, syscall.EINVAL)
	}
	b.mu.Lock()
	u := b.owned[unit]
	b.mu.Unlock()
	if u != nil {
		if isDir(u.dir) {
			return u.dir, nil
		}
		return "", fmt.Errorf("cgroup of unit %s: %w", unit, fs.ErrNotExist)
	}
	name := escapeCgroupName(unit)
	level := []string{b.root}
	for depth := 0; depth <= maxSliceDepth && len(level) > 0; depth++ {
		var next []string
		for _, dir := range level {
			if cand := filepath.Join(dir, name); isDir(cand) {
				return cand, nil
			}
			if depth == maxSliceDepth {
				continue
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue // raced with a removal; the unit is not in there
			}
			for _, e := range entries {
				if e.IsDir() && strings.HasSuffix(e.Name(), ".slice") {
					next = append(next, filepath.Join(dir, e.Name()))
				}
			}
		}
		level = next
	}
	return "", fmt.Errorf("cgroup of unit %s: %w", unit, fs.ErrNotExist)
}

func isDir(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.IsDir()
}

// relPath turns a directory below the root into the path /proc/PID/cgroup shows.
func (b *Backend) relPath(dir string) string {
	rel := strings.TrimPrefix(dir, b.root)
	if rel == "" {
		return "/"
	}
	return rel
}

// populated reads the "populated" key of dir/cgroup.events: true while any
// process lives in dir or below.
func populated(dir string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return strings.TrimSpace(v) == "1", nil
		}
	}
	return false, fmt.Errorf("no populated key in %s/cgroup.events: %w", dir, syscall.ENODATA)
}
