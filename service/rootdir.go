package service

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// OpenRootDirectory opens the machine's root directory for reading: the
// container's "/" as its leader sees it, or the host's. The caller owns the
// file.
func (m *Manager) OpenRootDirectory(ctx context.Context, c Caller, sel Selector) (*os.File, error) {
	mc, mi, err := m.selectMachine(c, sel)
	if err != nil {
		return nil, err
	}
	if mi.Class != ClassContainer && mi.Class != ClassHost {
		return nil, errNotSupportedf("opening the root directory is only supported on container machines")
	}
	if err := m.authorizeContainerOp(ctx, c, mc, OpOpenRootDirectory, func() map[string]string {
		return map[string]string{"machine": mi.Name, "verb": "open_root_directory"}
	}); err != nil {
		return nil, err
	}
	if mi.Class == ClassHost {
		fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open /: %w", err)
		}
		return os.NewFile(uintptr(fd), "/"), nil
	}
	leader, err := leaderRef(mi)
	if err != nil {
		return nil, err
	}
	defer leader.Close()
	f, err := proc.OpenRoot(leader, ownerOf(mi, leader))
	if err != nil {
		return nil, insideErr(mi, err)
	}
	return f, nil
}
