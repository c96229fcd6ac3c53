package varlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/sockio"
)

// AnswerOnAcceptLoop makes Serve answer calls on its own goroutine, with the
// sockets outside the Go runtime, once ready is closed. glibc's nss-systemd
// opens a connection for every lookup, sends one call and hangs up; other
// clients keep one connection and make one call after the other. Handing
// either to a worker goroutine, parking it on the netpoller, the syscalls
// that tell the scheduler they may block (and wake its monitor thread on an
// idle daemon) and the runtime's per-connection set-up cost more than the
// lookup. A call that may have to wait (one that can have many replies, one
// with fds, one that came in parts) goes to a worker as every other, and so
// does the rest of its connection.
//
// Only for handlers that answer from memory without waiting on anything (no
// other process, no client) and send no fds: no other connection is served
// while one runs. Until ready is closed every connection goes to a worker;
// AfterReady's wait is what ready stands in for. Call it before Serve.
func (s *Server) AnswerOnAcceptLoop(ready <-chan struct{}) { s.loopReady = ready }

// callsPerTurn bounds the calls the loop answers on one connection before it
// looks at the others again: a client that pipelines more is a worker's to
// serve, so that it cannot keep the others waiting.
const callsPerTurn = 16

// rawFD is the socket of a connection the accept loop holds: a RawConn that
// never waits. Read and Write run f once and fail with errWouldBlock where a
// netpoller RawConn would park.
type rawFD struct{ fd int }

var (
	errWouldBlock     = errors.New("socket not ready")
	errListenerClosed = errors.New("listener closed")
)

func (r *rawFD) Control(f func(fd uintptr)) error {
	f(uintptr(r.fd))
	return nil
}

func (r *rawFD) Read(f func(fd uintptr) bool) error {
	if !f(uintptr(r.fd)) {
		return errWouldBlock
	}
	return nil
}

func (r *rawFD) Write(f func(fd uintptr) bool) error { return r.Read(f) }

// acceptLoop is Serve for AnswerOnAcceptLoop: one goroutine parked on an
// epoll set of its own, holding the listener and the connections that wait
// for their next call or their hang-up. The set's fd sits in the netpoller,
// so the goroutine parks like any other. Such a connection costs no goroutine
// and no netpoller registration; the idle timeout still applies (idle holds
// them oldest first), and so do the connection limits, counted from accept
// to close. The set is level-triggered: a connection that still has
// something to say is reported again on the next turn.
type acceptLoop struct {
	s        *Server
	ctx      context.Context
	lfd      int // the listener's
	ep       int
	epf      *os.File // ep, parked on by the loop
	eprc     syscall.RawConn
	pollFn   func(fd uintptr) bool
	events   [32]unix.EpollEvent
	ready    int // events[:ready] came from the last poll
	held     map[int32]*Conn
	idle     connList  // held, by idle deadline
	deadline time.Time // the one set on epf; zero: none
	backoff  time.Duration
	group    *connGroup // of the connections handed over
}

// connList is a queue of connections linked through prev and next, which
// only a connGroup uses otherwise: a connection is in one or the other.
type connList struct{ head, tail *Conn }

func (l *connList) push(c *Conn) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *connList) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.head == c {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if l.tail == c {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// newAcceptLoop sets up the epoll set with the listener in it; nil when the
// listener does not offer its fd, and the caller serves the usual way.
func newAcceptLoop(ctx context.Context, s *Server, l Acceptor) (*acceptLoop, error) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	lrc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	a := &acceptLoop{s: s, ctx: ctx, lfd: -1, held: map[int32]*Conn{}, backoff: 5 * time.Millisecond}
	lrc.Control(func(fd uintptr) { a.lfd = int(fd) })
	if a.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(a.ep, true); err != nil {
		unix.Close(a.ep)
		return nil, err
	}
	a.epf = os.NewFile(uintptr(a.ep), "varlink-accept-epoll")
	if a.eprc, err = a.epf.SyscallConn(); err != nil {
		a.epf.Close()
		return nil, err
	}
	// Level-triggered: one accept per event, and a listener with more
	// connections waiting is reported again, so no accept4 ends in EAGAIN.
	if err := sockio.EpollCtl(a.ep, unix.EPOLL_CTL_ADD, a.lfd, unix.EPOLLIN); err != nil {
		a.epf.Close()
		return nil, err
	}
	a.pollFn = a.poll
	return a, nil
}

// poll takes the ready events; false (park) when there are none.
func (a *acceptLoop) poll(fd uintptr) bool {
	n, err := sockio.EpollWaitNow(int(fd), a.events[:])
	if err != nil {
		n = 0
	}
	a.ready = n
	return n > 0
}

// run serves until ctx ends (wake makes the parked loop see it) or the
// listener fails.
func (a *acceptLoop) run() error {
	defer a.epf.Close()
	defer a.closeAll()
	for {
		err := a.eprc.Read(a.pollFn)
		if a.ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		for _, ev := range a.events[:a.ready] {
			if int(ev.Fd) == a.lfd {
				if err := a.accept(); err == errListenerClosed {
					return nil
				} else if err != nil {
					return err
				}
				continue
			}
			if c := a.held[ev.Fd]; c != nil {
				a.serveSafely(c)
			}
		}
		a.ready = 0
		a.expire()
	}
}

// serveSafely runs serve where a framing bug costs the connection, not the
// daemon (a handler's panic is already caught by Server.call).
func (a *acceptLoop) serveSafely(c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			a.s.log.Error("panic serving connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if c.uc == nil && c.raw.fd >= 0 {
				a.unhold(c)
				a.close(c)
			}
		}
	}()
	a.serve(c)
}

// wake makes the loop look at ctx: the end of Serve.
func (a *acceptLoop) wake() { a.epf.SetReadDeadline(time.Unix(1, 0)) }

// accept takes one connection and answers what it has sent already.
func (a *acceptLoop) accept() error {
	s := a.s
	fd, err := sockio.Accept4(a.lfd)
	if err == unix.EAGAIN {
		return nil
	}
	if err != nil {
		if a.ctx.Err() != nil || err == unix.EBADF {
			return errListenerClosed // Serve is over, or the listener was closed under it
		}
		if !transientAcceptError(err) {
			return err
		}
		s.log.Warn("accept failed", "err", err)
		time.Sleep(a.backoff)
		a.backoff = min(2*a.backoff, time.Second)
		return nil
	}
	a.backoff = 5 * time.Millisecond
	cred, err := sockio.PeerCred(fd)
	if err != nil {
		sockio.Close(fd)
		return nil
	}
	peer := Peer{UID: cred.Uid, GID: cred.Gid, PID: int(cred.Pid)}
	privileged, ok := s.take(peer.UID)
	if !ok {
		sockio.Close(fd)
		return nil
	}
	c := &Conn{lim: s.lim, peer: peer, budget: s.input, privileged: privileged}
	c.raw.fd = fd
	c.rc = &c.raw
	c.pidfd.rc = c.rc
	c.peer.pidfd = &c.pidfd
	if !a.answers() {
		a.handOver(c)
		return nil
	}
	a.serveSafely(c)
	return nil
}

// answers: the loop answers calls only once the handler would not wait, and
// leaves peers the server may refuse to serve (Admit) to the workers.
func (a *acceptLoop) answers() bool {
	if a.s.admits != nil {
		return false
	}
	select {
	case <-a.s.loopReady:
		return true
	default:
		return false
	}
}

// serve reads once what c sent and answers the calls that came whole, up to
// callsPerTurn; then c waits in the set for its next call or its hang-up,
// unless it has to go to a worker. One recvmsg a turn: a peer streaming a
// long message cannot keep the loop reading.
func (a *acceptLoop) serve(c *Conn) {
	a.unhold(c)
	switch err := c.fillNow(); {
	case err == errNotReady:
		a.hold(c) // woken for nothing
		return
	case err != nil:
		a.s.readFailed(a.ctx, c, err)
		a.close(c)
		return
	}
	for calls := 0; ; calls++ {
		nul, err := c.nextEnd()
		if err != nil {
			c.closeFDs()
			a.s.readFailed(a.ctx, c, err)
			a.close(c)
			return
		}
		if nul < 0 {
			break
		}
		if calls == callsPerTurn || c.pending > 0 || mayWait(c.buf[c.head:nul]) {
			a.handOver(c)
			return
		}
		msg, fds, err := c.takeMessage(nul)
		if err != nil {
			a.s.readFailed(a.ctx, c, err)
			a.close(c)
			return
		}
		if a.s.answer(c.callContext(a.ctx), c, msg, fds) != nil {
			a.close(c)
			return
		}
		if len(c.unsent) > 0 {
			a.handOver(c) // the peer reads no faster: a worker waits for it
			return
		}
	}
	if len(c.buf) > c.head {
		a.handOver(c) // a message begun: the worker bounds its arrival
		return
	}
	a.hold(c)
}

// mayWait tells the calls the loop leaves to a worker by a look at their
// bytes, without parsing them: one with "more" may have replies without end,
// one with "upgrade" may hand the connection to another protocol. Keys are
// compared after unescaping, so a message with a backslash anywhere may hide
// either; such calls are rare, and a worker answers them as well.
func mayWait(msg []byte) bool {
	return bytes.IndexByte(msg, '\\') >= 0 || bytes.Contains(msg, keyMoreBytes) || bytes.Contains(msg, keyUpgradeBytes)
}

var (
	keyMoreBytes    = []byte(`"more"`)
	keyUpgradeBytes = []byte(`"upgrade"`)
)

// hold puts c in the set until it has something to say or its idle time is up.
func (a *acceptLoop) hold(c *Conn) {
	c.reclaim() // a connection waiting between calls holds no buffer
	if _, in := a.held[int32(c.raw.fd)]; !in {
		if err := sockio.EpollCtl(a.ep, unix.EPOLL_CTL_ADD, c.raw.fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			a.handOver(c)
			return
		}
	}
	a.held[int32(c.raw.fd)] = c
	if a.s.lim.IdleTimeout > 0 {
		c.msgDeadline = time.Now().Add(a.s.lim.IdleTimeout)
		a.idle.push(c)
		// Deadlines only grow along the queue: one set earlier wakes the loop
		// early at worst, and expire sets the next.
		if a.deadline.IsZero() {
			a.setDeadline(c.msgDeadline)
		}
	}
}

// unhold takes c off the idle queue; it stays in the epoll set and the map
// until it is closed or handed over.
func (a *acceptLoop) unhold(c *Conn) {
	if a.s.lim.IdleTimeout > 0 {
		a.idle.remove(c)
	}
	c.msgDeadline = time.Time{}
}

// forget takes c out of the set: closing the fd does that by itself (the
// loop's fds are never duplicated), so only a hand-over, which keeps a dup,
// asks the kernel.
func (a *acceptLoop) forget(c *Conn, closing bool) {
	if _, in := a.held[int32(c.raw.fd)]; in {
		if !closing {
			sockio.EpollCtl(a.ep, unix.EPOLL_CTL_DEL, c.raw.fd, 0)
		}
		delete(a.held, int32(c.raw.fd))
	}
}

func (a *acceptLoop) setDeadline(t time.Time) {
	a.deadline = t
	a.epf.SetReadDeadline(t)
	if a.ctx.Err() != nil {
		a.wake() // the deadline just set must not hide the end of Serve
	}
}

// expire closes the held connections whose idle time is up.
func (a *acceptLoop) expire() {
	if a.deadline.IsZero() {
		return
	}
	now := time.Now()
	if now.Before(a.deadline) {
		return
	}
	for c := a.idle.head; c != nil && !now.Before(c.msgDeadline); c = a.idle.head {
		a.unhold(c)
		a.close(c)
	}
	var next time.Time
	if a.idle.head != nil {
		next = a.idle.head.msgDeadline
	}
	a.setDeadline(next)
}

// close ends a connection the loop holds.
func (a *acceptLoop) close(c *Conn) {
	a.forget(c, true)
	uid, privileged := c.peer.UID, c.privileged
	a.s.closeConn(c)
	a.s.release(uid, privileged)
}

// handOver gives c a *net.UnixConn and a worker, as a connection of the
// usual accept path has.
func (a *acceptLoop) handOver(c *Conn) {
	a.forget(c, false)
	s := a.s
	uid, privileged := c.peer.UID, c.privileged
	f := os.NewFile(uintptr(c.raw.fd), "varlink")
	nc, err := net.FileConn(f) // a dup, registered with the netpoller
	f.Close()
	c.raw.fd = -1
	uc, ok := nc.(*net.UnixConn)
	if err != nil || !ok {
		if nc != nil {
			nc.Close()
		}
		c.closeFDs()
		c.freeInput()
		closePeer(c.peer)
		s.release(uid, privileged)
		return
	}
	c.uc = uc
	c.rc, _ = uc.SyscallConn()
	c.pidfd.rc = c.rc
	ctx := s.open(a.ctx, c, a.group)
	s.workers.Run(func() {
		defer s.release(uid, privileged)
		s.serve(ctx, c)
	})
}

// closeAll ends the held connections: Serve is over.
func (a *acceptLoop) closeAll() {
	for _, c := range a.held {
		if a.s.lim.IdleTimeout > 0 {
			a.idle.remove(c)
		}
		a.close(c)
	}
}
