package proc

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// OpenNS opens p's namespace of the given kind, its name under /proc/PID/ns
// ("mnt", "user", "net"...). The pidfd is checked after the open, so the fd is
// p's namespace even if the PID was reused meanwhile.
func (p *PidRef) OpenNS(kind string) (int, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(p.PID)+"/ns/"+kind, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, p.gone(fmt.Errorf("open %s namespace of pid %d: %w", kind, p.PID, err))
	}
	if err := p.Verify(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
