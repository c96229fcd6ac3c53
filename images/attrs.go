package images

import (
	"golang.org/x/sys/unix"
)

// fsImmutableFL is FS_IMMUTABLE_FL ("chattr +i").
const fsImmutableFL = 0x10

func fileAttrs(fd int) (uint32, error) {
	return unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
}

// setImmutable sets or clears the immutable attribute of the inode fd (opened
// read-only: the attribute ioctls need no write access).
func setImmutable(fd int, on bool) error {
	attrs, err := fileAttrs(fd)
	if err != nil {
		return err
	}
	n := attrs &^ fsImmutableFL
	if on {
		n |= fsImmutableFL
	}
	if n == attrs {
		return nil
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(n))
}

// setImmutablePath is setImmutable on the directory or file at path.
func setImmutablePath(path string, on bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setImmutable(fd, on)
}

// immutablePath reports whether the inode at path has the immutable attribute.
func immutablePath(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	attrs, err := fileAttrs(fd)
	return err == nil && attrs&fsImmutableFL != 0
}
