package proc

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/envfile"
)

// maxOSRelease bounds what we read of a container-controlled file.
const maxOSRelease = 64 << 10

// osReleasePaths are tried in order, relative to the root directory.
var osReleasePaths = []string{"etc/os-release", "usr/lib/os-release"}

// OSRelease returns the os-release of the process' root directory as ordered
// "KEY=VALUE" strings, read as owner (AsOwner). The files are resolved inside
// /proc/PID/root with openat2(RESOLVE_IN_ROOT), so the container's absolute
// symlinks and ".." stay in its tree and no namespace has to be joined.
// /proc/PID/root shows the tree as the process sees it, mounts of its own
// mount namespace included: whoever controls that namespace can put any file
// the daemon could open at those paths, which is why the read is done as
// owner. Neither file present: an error wrapping syscall.ENOENT.
func OSRelease(p *PidRef, owner Owner) ([]string, error) {
	var osr []string
	err := AsOwner(owner, func() error {
		root, err := p.OpenRoot()
		if err != nil {
			return err
		}
		defer unix.Close(root)
		osr, err = osReleaseAt(root)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("os-release of pid %d: %w", p.PID, err)
	}
	return osr, nil
}

// HostOSRelease returns our own os-release: /etc/os-release, else
// /usr/lib/os-release.
func HostOSRelease() ([]string, error) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /: %w", err)
	}
	defer unix.Close(root)
	osr, err := osReleaseAt(root)
	if err != nil {
		return nil, fmt.Errorf("host os-release: %w", err)
	}
	return osr, nil
}

// osReleaseAt reads and parses the first os-release file found below rootfd.
func osReleaseAt(rootfd int) ([]string, error) {
	for _, name := range osReleasePaths {
		fd, err := openInRoot(rootfd, name)
		if errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		data, err := readRegular(fd, name, maxOSRelease)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		// The container writes this file: read it as systemd would.
		as, err := envfile.ParseLenient(data)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, a.Key+"="+a.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("no %s: %w", osReleasePaths[0], syscall.ENOENT)
}

// readRegular reads at most limit bytes of a regular file; anything else (a
// device, FIFO or directory in the container's tree) or anything longer is
// refused rather than read.
func readRegular(fd int, name string, limit int) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil, fmt.Errorf("read %s: %w", name, syscall.EISDIR)
	default:
		return nil, fmt.Errorf("read %s: not a regular file: %w", name, syscall.EINVAL)
	}
	// Size is only a hint: the file may grow while we read.
	buf := make([]byte, 0, max(512, min(st.Size, int64(limit))+1))
	for len(buf) <= limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), limit+1)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
	return nil, fmt.Errorf("read %s: larger than %d bytes: %w", name, limit, syscall.EFBIG)
}
