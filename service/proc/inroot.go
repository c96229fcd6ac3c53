package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

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
	fd, err := openInRootFlags(rootfd, path, unix.O_PATH)
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
