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
		fd, err = unix.Open("/proc/"+strconv.Itoa(p.PID)+"/root", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return p.gone(fmt.Errorf("open root of pid %d: %w", p.PID, err))
		}
		// The fd pins the right tree even if the PID is reused later; only
		// the open itself could have raced.
		if err := p.Verify(); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "root:"+strconv.Itoa(p.PID)), nil
}
