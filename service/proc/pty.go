package proc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The pseudo-terminal multiplexer's device number (TTYAUX_MAJOR, minor 2).
const (
	ptmxMajor = 5
	ptmxMinor = 2
)

// PTY is a pseudo terminal's master side and the path of its peer as the
// machine it was allocated in sees it.
type PTY struct {
	Master *os.File
	Path   string // "/dev/pts/N"
}

// OpenPTY allocates a pseudo terminal in the devpts instance of p's root, the
// one a container mounts for itself: it opens dev/ptmx resolved inside
// /proc/PID/root (openat2 RESOLVE_IN_ROOT, so the container's own symlink
// /dev/ptmx -> pts/ptmx is followed without leaving its tree), and the
// kernel allocates from the devpts mounted next to it. The number is then the
// container's, and so is the path. The open runs as as (AsOwner): the new
// /dev/pts/N node belongs to as's fsuid, which must be a uid the container
// maps for its own programs (getty, login) to take the terminal over.
func OpenPTY(p *PidRef, as Owner) (PTY, error) {
	var fd int
	err := AsOwner(as, func() error {
		root, err := p.OpenRoot()
		if err != nil {
			return err
		}
		defer unix.Close(root)
		fd, err = openPTMXIn(root)
		return err
	})
	if err != nil {
		return PTY{}, fmt.Errorf("pseudo terminal in pid %d: %w", p.PID, err)
	}
	return finishPTY(fd)
}

// OpenHostPTY allocates a pseudo terminal on the host, as posix_openpt does.
func OpenHostPTY() (PTY, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return PTY{}, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	return finishPTY(fd)
}

// openPTMXIn opens dev/ptmx below rootfd. O_NONBLOCK keeps a FIFO planted at
// that path from blocking the open; anything but the multiplexer itself is
// refused, and the flag is cleared again, since it would show on every copy of
// the master the client receives.
func openPTMXIn(rootfd int) (int, error) {
	fd, err := OpenInRoot(rootfd, "dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("stat /dev/ptmx: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != ptmxMajor || unix.Minor(st.Rdev) != ptmxMinor {
		unix.Close(fd)
		return -1, fmt.Errorf("/dev/ptmx is not the pseudo-terminal multiplexer: %w", syscall.ENODEV)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("clear O_NONBLOCK: %w", err)
	}
	return fd, nil
}

// finishPTY unlocks the peer (unlockpt) and names it (TIOCGPTN gives the
// number in the instance the master came from). It takes ownership of fd.
func finishPTY(fd int) (PTY, error) {
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return PTY{}, fmt.Errorf("unlock pseudo terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return PTY{}, fmt.Errorf("pseudo terminal number: %w", err)
	}
	path := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	return PTY{Master: os.NewFile(uintptr(fd), "ptmx:"+path), Path: path}, nil
}

// Peer opens the peer of the pseudo terminal master (TIOCGPTPEER): the
// terminal itself, reached through the master rather than by path, which in
// a container would have to be resolved in its tree.
func (t PTY) Peer() (*os.File, error) {
	rc, err := t.Master.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd uintptr
	var errno syscall.Errno
	cerr := rc.Control(func(m uintptr) {
		fd, _, errno = unix.Syscall(unix.SYS_IOCTL, m, unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	})
	if cerr != nil {
		return nil, cerr
	}
	if errno != 0 {
		return nil, fmt.Errorf("open peer of %s: %w", t.Path, errno)
	}
	return os.NewFile(fd, t.Path), nil
}
