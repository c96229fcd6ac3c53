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

// Writer is Write for a connection that writes often: it keeps its state and
// its callback between writes, where Write's closure costs allocations on
// every call. The zero value is ready; one goroutine at a time.
type Writer struct {
	b   []byte
	err error
	fn  func(fd uintptr) bool
}

// Write is the package's Write.
func (w *Writer) Write(rc syscall.RawConn, b []byte) error {
	if w.fn == nil {
		w.fn = w.try
	}
	w.b, w.err = b, nil
	err := rc.Write(w.fn)
	if err == nil {
		err = w.err
	}
	w.b, w.err = nil, nil
	return err
}

func (w *Writer) try(fd uintptr) bool {
	var done bool
	w.b, done, w.err = send(fd, w.b)
	return done
}

// send writes as much of b as the socket takes: the rest, whether the write
// is over (false: wait for room), and the error that ended it.
func send(fd uintptr, b []byte) ([]byte, bool, error) {
	for len(b) > 0 {
		// sendto with MSG_NOSIGNAL: a peer that went away is EPIPE, not SIGPIPE.
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			b = b[r:]
		case unix.EINTR:
		case unix.EAGAIN:
			return b, false, nil
		default:
			return b, true, e
		}
	}
	return b, true, nil
}

// Write writes all of b to rc, waiting whenever the socket is full; the
// connection's write deadline applies.
func Write(rc syscall.RawConn, b []byte) error {
	var w Writer
	return w.Write(rc, b)
}

// Send writes as much of b as a socket outside the netpoller takes now and
// returns the rest: EAGAIN when the socket filled before all of b went.
func Send(fd int, b []byte) ([]byte, error) {
	rest, done, err := send(uintptr(fd), b)
	if err == nil && !done {
		err = unix.EAGAIN
	}
	return rest, err
}
