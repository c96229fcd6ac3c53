package proc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// OpenRoot opens p's root directory, as p sees it (its mounts included), for
// reading, as owner (AsOwner): the directory a container calls "/".
func OpenRoot(p *PidRef, owner Owner) (*os.File, error) {
	var fd int
	err := AsOwner(owner, func() error {
		var err error
		fd, err = p.openRoot(unix.O_RDONLY)
		return err
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "root:"+strconv.Itoa(p.PID)), nil
}

// OpenRoot opens p's root directory (O_PATH), as the tree p sees: its mounts,
// from its mount namespace, included. Paths below it must be resolved with
// RESOLVE_IN_ROOT (OpenInRoot).
func (p *PidRef) OpenRoot() (int, error) { return p.openRoot(unix.O_PATH) }

// openRoot opens /proc/PID/root with flags, then checks the pidfd: the fd pins
// the tree even if the PID is reused afterwards, and the check makes sure it
// was p's when opened, the only moment that could have raced.
func (p *PidRef) openRoot(flags int) (int, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(p.PID)+"/root", flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, p.gone(fmt.Errorf("open root of pid %d: %w", p.PID, err))
	}
	if err := p.Verify(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
