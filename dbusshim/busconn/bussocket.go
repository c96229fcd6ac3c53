package busconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/sockio"
)

// busSocket is the relay's end of the bus connection, kept out of Go's
// netpoller. The netpoller watches every socket for output room as well as
// input, edge-triggered, and the bus frees room each time it reads one of our
// messages: every reply and signal woke the daemon's idle thread once more to
// find nothing to do. Here an epoll set of our own watches the socket for input
// only; the set's fd sits in the netpoller (an epoll fd never reports room for
// output), so the reader parks like any other goroutine. Writes are raw and
// non-blocking; the rare write that finds the socket full waits in poll(2).
type busSocket struct {
	fd     int // closed by release, once reader and writers are done
	epf    *os.File
	eprc   syscall.RawConn
	closed atomic.Bool

	// The reader's, for readFn: one goroutine reads.
	readFn         func(ep uintptr) bool
	rp, roob       []byte
	rn, roobn, rfl int
	rerr           error
}

// roomWait bounds one wait for output room, so that a writer notices
// shutdown even on a kernel whose poll missed the hang-up.
const roomWait = time.Second

// newBusSocket takes over c: its descriptor is duplicated into the epoll set
// and c is closed (which takes it out of the netpoller).
func newBusSocket(c *net.UnixConn) (*busSocket, error) {
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if cerr := rc.Control(func(u uintptr) { fd, derr = unix.FcntlInt(u, unix.F_DUPFD_CLOEXEC, 3) }); cerr != nil {
		return nil, cerr
	}
	if derr != nil {
		return nil, derr
	}
	s := &busSocket{fd: fd}
	fail := func(err error) (*busSocket, error) {
		if s.epf != nil {
			s.epf.Close()
		}
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return fail(err)
	}
	s.epf = os.NewFile(uintptr(ep), "dbus-bus-epoll")
	if s.eprc, err = s.epf.SyscallConn(); err != nil {
		return fail(err)
	}
	// Level-triggered: the set reports input for as long as some is unread.
	if err := sockio.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
		return fail(err)
	}
	s.readFn = s.tryRead
	return s, nil
}

// tryRead is the reader's callback on the set's fd: it receives from the
// socket, and on EAGAIN parks until the netpoller sees the set turn ready.
// The receive must happen here, after the netpoller has forgotten earlier
// wake-ups, or input that came just before parking would wait for the next.
// The set itself is never read: the kernel wakes its pollers on every
// arrival and checks the socket when it reports the set ready.
func (s *busSocket) tryRead(uintptr) bool {
	for {
		s.rn, s.roobn, s.rfl, s.rerr = sockio.Recvmsg(uintptr(s.fd), s.rp, s.roob)
		if !errors.Is(s.rerr, unix.EINTR) {
			return !errors.Is(s.rerr, unix.EAGAIN)
		}
	}
}

// readMsg waits for input and receives it into p and oob; the end of the
// stream is io.EOF, a shut socket net.ErrClosed. One goroutine at a time.
func (s *busSocket) readMsg(p, oob []byte) (n, oobn, flags int, err error) {
	if s.closed.Load() {
		return 0, 0, 0, net.ErrClosed
	}
	s.rp, s.roob = p, oob
	err = s.eprc.Read(s.readFn)
	s.rp, s.roob = nil, nil
	ended := s.rn == 0 && s.roobn == 0 && len(p) > 0
	switch {
	case (err != nil || s.rerr != nil || ended) && s.closed.Load():
		return 0, 0, 0, net.ErrClosed // shut under us: its hang-up or the set's close
	case err != nil:
		return 0, 0, 0, err
	case s.rerr != nil:
		return 0, 0, 0, s.rerr
	case ended:
		return 0, 0, 0, io.EOF
	}
	return s.rn, s.roobn, s.rfl, nil
}

// write writes all of b, with fds attached to its first byte. Writers must
// take turns (the relay's busMu).
func (s *busSocket) write(b []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for len(b) > 0 || oob != nil {
		if s.closed.Load() {
			return net.ErrClosed
		}
		var err error
		if oob != nil {
			var n int
			n, err = unix.SendmsgN(s.fd, b, oob, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
			if err == nil {
				b, oob = b[n:], nil
			}
		} else {
			b, err = sockio.Send(s.fd, b)
		}
		switch {
		case err == nil, errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, int(roomWait/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

// shutdown wakes the reader and any writer waiting for room; both then
// answer net.ErrClosed. The descriptor stays open until release.
func (s *busSocket) shutdown() {
	if s.closed.Swap(true) {
		return
	}
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	s.epf.Close()
}

// release closes the descriptor, after shutdown, once nobody uses it.
func (s *busSocket) release() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}
