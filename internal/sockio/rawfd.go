package sockio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below are for sockets the Go runtime does not own (no netpoller
// registration): a connection the Varlink accept loop serves itself. Each
// returns at once: accept4 and recvmsg on non-blocking sockets, epoll_wait
// with a zero timeout, and close of a socket without SO_LINGER.

// Accept4 accepts one connection, non-blocking and close-on-exec; EAGAIN
// when none is waiting.
func Accept4(fd int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}

// PeerCred is SO_PEERCRED: who connected, as of connect(2).
func PeerCred(fd int) (unix.Ucred, error) {
	var cred unix.Ucred
	n := uint32(unsafe.Sizeof(cred))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERCRED, uintptr(unsafe.Pointer(&cred)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return cred, e
	}
	return cred, nil
}

// Close closes fd.
func Close(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// EpollWaitNow returns the events of epfd that are ready now, without waiting.
func EpollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// EpollCtl adds fd to epfd (op EPOLL_CTL_ADD) or takes it out (EPOLL_CTL_DEL).
func EpollCtl(epfd, op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// UnixAddr is a unix socket address in the kernel's layout, built once for a
// destination that gets datagram after datagram.
type UnixAddr struct {
	sa  unix.RawSockaddrUnix
	len uint32
}

// NewUnixAddr lays out path (a file system path, not an abstract name).
func NewUnixAddr(path string) (*UnixAddr, error) {
	a := &UnixAddr{}
	if path == "" || len(path) >= len(a.sa.Path) || path[0] == '@' {
		return nil, unix.EINVAL
	}
	a.sa.Family = unix.AF_UNIX
	for i := 0; i < len(path); i++ {
		if path[i] == 0 {
			return nil, unix.EINVAL
		}
		a.sa.Path[i] = int8(path[i])
	}
	a.len = uint32(unsafe.Offsetof(a.sa.Path)) + uint32(len(path)) + 1
	return a, nil
}

// SendDatagramNow is sendto(fd, b, MSG_DONTWAIT|MSG_NOSIGNAL, to): one
// datagram, refused with EAGAIN rather than waited for when the receiver's
// queue is full.
func SendDatagramNow(fd int, b []byte, to *UnixAddr) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, uintptr(unsafe.Pointer(&to.sa)), uintptr(to.len))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}
