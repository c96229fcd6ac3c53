package sockio

import (
	"errors"
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Recvmsg is one non-blocking recvmsg(2) with MSG_CMSG_CLOEXEC into p and oob,
// for use inside syscall.RawConn.Read.
func Recvmsg(fd uintptr, p, oob []byte) (n, oobn, flags int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// ReadMsg waits until rc is readable and receives into p and oob. The end of
// the stream is io.EOF.
func ReadMsg(rc syscall.RawConn, p, oob []byte) (n, oobn, flags int, err error) {
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, rerr = Recvmsg(fd, p, oob)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, 0, 0, err
	}
	if n == 0 && oobn == 0 && len(p) > 0 {
		return 0, 0, 0, io.EOF
	}
	return n, oobn, flags, nil
}

// Write writes all of b to rc, waiting whenever the socket is full; the
// connection's write deadline applies.
func Write(rc syscall.RawConn, b []byte) error {
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			// sendto with MSG_NOSIGNAL: a peer that went away is EPIPE, not SIGPIPE.
			r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
			switch e {
			case 0:
				b = b[r:]
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				werr = e
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return err
}
