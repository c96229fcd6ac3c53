package containerfs

import (
	"fmt"
	"path"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// OpenParentInRoot opens the directory holding p inside the tree of rootfd
// (O_PATH) and returns it with p's last component. p must be absolute and
// have a last component (not "/").
func OpenParentInRoot(rootfd int, p string) (int, string, error) {
	dir, base := splitPath(p)
	if base == "" {
		return -1, "", fmt.Errorf("%s has no file name: %w", p, syscall.EINVAL)
	}
	fd, err := proc.OpenInRoot(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

// OpenParentOnHost opens the directory holding p on the host (O_PATH), as the
// calling thread's identity, and returns it with p's last component.
func OpenParentOnHost(p string) (int, string, error) {
	dir, base := splitPath(p)
	if base == "" {
		return -1, "", fmt.Errorf("%s has no file name: %w", p, syscall.EINVAL)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("open %s: %w", dir, err)
	}
	return fd, base, nil
}

// splitPath is p's directory and last component; "" for "/" and "".
func splitPath(p string) (dir, base string) {
	p = path.Clean("/" + p)
	if p == "/" {
		return "/", ""
	}
	return path.Dir(p), path.Base(p)
}
