package containerfs

import (
	"fmt"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// openInRoot opens p (absolute or not) below rootfd as if rootfd were "/".
// Magic links (/proc/self/root and its kind) are refused: they could lead
// anywhere.
func openInRoot(rootfd int, p string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 8 {
		fd, err := unix.Openat2(rootfd, p, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EAGAIN, unix.EINTR:
			// A concurrent rename or mount in the tree; the kernel asks us to retry.
			continue
		default:
			return -1, fmt.Errorf("open %s in the container: %w", p, err)
		}
	}
	return -1, fmt.Errorf("open %s in the container: tree keeps changing: %w", p, syscall.EAGAIN)
}

// OpenParentInRoot opens the directory holding p inside the tree of rootfd
// (O_PATH) and returns it with p's last component. p must be absolute and
// have a last component (not "/").
func OpenParentInRoot(rootfd int, p string) (int, string, error) {
	dir, base := splitPath(p)
	if base == "" {
		return -1, "", fmt.Errorf("%s has no file name: %w", p, syscall.EINVAL)
	}
	fd, err := openInRoot(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
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
