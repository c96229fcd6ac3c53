package quicksys

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// atFDCWD is AT_FDCWD as the system call takes it (a constant -100 cannot be
// converted to uintptr).
var atFDCWD = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

// Open is openat(AT_FDCWD, path, flags, mode); flags should include O_CLOEXEC.
func Open(path string, flags int, mode uint32) (int, error) {
	var pb pathBuf
	p, err := pb.ptr(path)
	if err != nil {
		return -1, err
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(flags|unix.O_LARGEFILE), uintptr(mode), 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, e
	}
}

// Read is one read(2), retried on EINTR.
func Read(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Write is one write(2), retried on EINTR; it may write less than b.
func Write(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// WriteNoWait is pwritev2(fd, b, -1, RWF_NOWAIT): a write at the file's
// position that the kernel refuses with EAGAIN rather than wait for room (a
// full pipe or socket buffer). Files that cannot promise that (ttys, some file
// systems, kernels before 4.14) answer EOPNOTSUPP or EINVAL. It may write less
// than b.
func WriteNoWait(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	noOffset := -1
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_PWRITEV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, uintptr(noOffset), uintptr(noOffset), unix.RWF_NOWAIT)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Close is close(2). EINTR is not retried: on Linux the fd is gone either way.
func Close(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}

// Rename is renameat2(AT_FDCWD, from, AT_FDCWD, to, 0): replaces to atomically.
func Rename(from, to string) error {
	var fb, tb pathBuf
	f, t, err := twoPaths(&fb, &tb, from, to)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_RENAMEAT2, atFDCWD, uintptr(unsafe.Pointer(f)), atFDCWD, uintptr(unsafe.Pointer(t)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Unlink is unlinkat(AT_FDCWD, path, 0).
func Unlink(path string) error {
	var pb pathBuf
	p, err := pb.ptr(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.RawSyscall(unix.SYS_UNLINKAT, atFDCWD, uintptr(unsafe.Pointer(p)), 0); e != 0 {
		return e
	}
	return nil
}

// Symlink is symlinkat(target, AT_FDCWD, path).
func Symlink(target, path string) error {
	var tb, pb pathBuf
	t, p, err := twoPaths(&tb, &pb, target, path)
	if err != nil {
		return err
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SYMLINKAT, uintptr(unsafe.Pointer(t)), atFDCWD, uintptr(unsafe.Pointer(p))); e != 0 {
		return e
	}
	return nil
}

// Readlink is readlinkat(AT_FDCWD, path) into buf; it returns the bytes read,
// which fill buf when the target may be longer.
func Readlink(path string, buf []byte) (int, error) {
	var pb pathBuf
	p, err := pb.ptr(path)
	if err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		return 0, unix.EINVAL
	}
	r, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// DupCloexec is fcntl(fd, F_DUPFD_CLOEXEC, 3): a new descriptor above stdio.
func DupCloexec(fd int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// PidfdOpen is pidfd_open(pid, flags).
func PidfdOpen(pid int, flags int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), uintptr(flags), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Fstat is fstat(2).
func Fstat(fd int, st *unix.Stat_t) error {
	if _, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0); e != 0 {
		return e
	}
	return nil
}

// Readable is ppoll of fd for POLLIN with a zero timeout, so it never waits:
// whether any event is pending (for a pidfd, that the process has exited).
func Readable(fd int) (bool, error) {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	var zero unix.Timespec
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
		switch e {
		case 0:
			return r > 0, nil
		case unix.EINTR:
			continue
		}
		return false, e
	}
}

// twoPaths converts the two path arguments of a call to C strings.
func twoPaths(ab, bb *pathBuf, a, b string) (*byte, *byte, error) {
	pa, err := ab.ptr(a)
	if err != nil {
		return nil, nil, err
	}
	pb, err := bb.ptr(b)
	if err != nil {
		return nil, nil, err
	}
	return pa, pb, nil
}

// pathBuf holds a path and its terminating NUL on the caller's stack: a
// registration names half a dozen files, and converting each name on the heap
// fed the garbage collector on every call. The system call gets a pointer into
// it; a pointer converted to uintptr in the argument list of an assembly
// function keeps its object alive and in place until the call returns.
type pathBuf [256]byte

// ptr returns s NUL-terminated: in buf when it fits, else in a new slice. A NUL
// inside s is EINVAL, as unix.BytePtrFromString has it.
func (buf *pathBuf) ptr(s string) (*byte, error) {
	if len(s) >= len(buf) {
		return unix.BytePtrFromString(s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, unix.EINVAL
	}
	n := copy(buf[:], s)
	buf[n] = 0
	return &buf[0], nil
}
