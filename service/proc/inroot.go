package proc

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// openInRoot opens path for reading as if rootfd were "/" (OpenInRoot).
// O_NONBLOCK keeps a FIFO planted by the container from blocking the open.
func openInRoot(rootfd int, path string) (int, error) {
	return OpenInRoot(rootfd, path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
}

// OpenInRoot opens path (absolute or not) with flags as if rootfd were "/":
// absolute symlinks and ".." resolve inside it, and magic links
// (/proc/self/root and friends, which could lead anywhere) are refused.
func OpenInRoot(rootfd int, path string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 8 {
		fd, err := unix.Openat2(rootfd, path, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EAGAIN, unix.EINTR:
			// A concurrent rename or mount in the tree; the kernel asks us to retry.
			continue
		default:
			return -1, fmt.Errorf("open %s in root: %w", path, err)
		}
	}
	return -1, fmt.Errorf("open %s in root: tree keeps changing: %w", path, syscall.EAGAIN)
}

// ReadFileInRoot reads the regular file path below rootfd as if rootfd were
// "/" (see openInRoot: the tree's symlinks and ".." stay inside it), at most
// limit bytes: a longer file is syscall.EFBIG, anything but a regular file is
// refused.
func ReadFileInRoot(rootfd int, path string, limit int) ([]byte, error) {
	fd, err := openInRoot(rootfd, path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readRegular(fd, path, limit)
}

// StatInRoot stats path below rootfd as if rootfd were "/", following the
// tree's symlinks inside it. The file is looked at, not opened (O_PATH): a
// device node planted in the tree is never opened by this.
func StatInRoot(rootfd int, path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := OpenInRoot(rootfd, path, unix.O_PATH)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, fmt.Errorf("stat %s: %w", path, err)
	}
	return st, nil
}

// OnDisposableThread runs f on an OS thread that is destroyed once f returns
// (see onDisposableThread), for callers outside this package that change the
// thread's namespaces.
func OnDisposableThread[T any](f func() T) <-chan T { return onDisposableThread(f) }
