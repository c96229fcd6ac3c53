package varlink

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// hangupWatch notices that the peer hung up while a handler waits for something
// else to send (a subscription): during a call nothing reads the socket, so
// without it a stream to a departed client would live until its next write.
type hangupWatch struct {
	done   chan struct{} // closed when the peer hung up
	exited chan struct{} // closed when the watching goroutine is gone
}

// watchHangup parks a goroutine on the socket's readability with the
// netpoller. It peeks, so whatever arrives stays for ReadMessage: EOF or an
// error means the peer is gone; data means it is there and has more to say, and
// the watch ends without a verdict. The idle deadline is lifted meanwhile: a
// subscriber may stay silent as long as it listens.
func (c *Conn) watchHangup() *hangupWatch {
	h := &hangupWatch{done: make(chan struct{}), exited: make(chan struct{})}
	if c.rc == nil {
		close(h.done)
		close(h.exited)
		return h
	}
	if c.uc == nil {
		close(h.exited) // the accept loop's calls do not wait: nothing to watch
		return h
	}
	c.uc.SetReadDeadline(time.Time{})
	go func() {
		defer close(h.exited)
		var b [1]byte
		hung := false
		err := c.rc.Read(func(fd uintptr) bool {
			n, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if rerr == unix.EAGAIN || rerr == unix.EINTR {
				return false
			}
			hung = rerr != nil || n == 0
			return true
		})
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			hung = true
		}
		if hung {
			close(h.done)
		}
	}()
	return h
}

// stopHangupWatch wakes the parked goroutine with a past deadline and waits for
// it, so that it never reads beside the next ReadMessage. A message begun before
// the call gets its own deadline back (armDeadline sets it only once per
// message); otherwise the next read arms the idle one.
func (c *Conn) stopHangupWatch(h *hangupWatch) {
	if c.uc == nil {
		return
	}
	c.uc.SetReadDeadline(time.Unix(1, 0))
	<-h.exited
	c.uc.SetReadDeadline(c.msgDeadline)
}
