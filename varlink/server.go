package varlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/sockio"
	"github.com/machined-go/machined/internal/workerpool"
)

// Limits bound what one client can make the daemon hold. The sockets are mode
// 0666, so every local user is a potential attacker.
type Limits struct {
	MaxMessageSize       int           // bytes before the NUL; sd-varlink uses 16 MiB
	MaxFDsPerMessage     int           // fds one recvmsg may carry
	MaxPendingFDs        int           // fds held for messages not yet complete
	MaxConnections       int           // per server, everyone included
	MaxConnectionsPerUID int           // per unprivileged user, per server
	ReservedConnections  int           // of MaxConnections, only for root and the daemon's own uid
	MaxPendingInput      int           // bytes buffered for incomplete messages, per server; 0: unbounded
	IdleTimeout          time.Duration // no data for this long closes the connection; 0: never
	WriteTimeout         time.Duration // one reply write may take this long
}

// DefaultLimits: sd-varlink's message size and global connection cap, its
// newer per-uid cap (so that it takes thirty users, not four, to fill the
// unprivileged share), a reserve that keeps root in when they do, and our own
// caps for fds and time.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageSize:       16 << 20,
		MaxFDsPerMessage:     16,
		MaxPendingFDs:        16,
		MaxConnections:       4096,
		MaxConnectionsPerUID: 128,
		ReservedConnections:  256,
		MaxPendingInput:      64 << 20,
		IdleTimeout:          5 * time.Minute,
		WriteTimeout:         30 * time.Second,
	}
}

// Handler receives each complete message; calls on one connection are sequential.
// msg lies in the connection's read buffer and is valid only until the handler
// returns. Returning an error closes the connection.
type Handler func(ctx context.Context, conn *Conn, msg []byte, fds []*os.File) error

// Server is an accept loop with limits, serving one socket.
type Server struct {
	name string
	h    Handler
	lim  Limits
	log  *slog.Logger

	mu        sync.Mutex
	conns     int
	unpriv    int // connections of unprivileged peers, within MaxConnections-ReservedConnections
	perUID    map[uint32]int
	ownUID    uint32
	listeners []Acceptor
	cancels   []context.CancelFunc
	wg        sync.WaitGroup
	lastDrop  time.Time
	workers   *workerpool.Pool
	input     *inputBudget
	admits    func(uid uint32) bool // nil: every peer is served
	connEnded func()                // OnConnEnd's; nil: nothing
	// loopReady, once closed, lets the accept loop answer calls
	// (AnswerOnAcceptLoop); nil: never.
	loopReady <-chan struct{}
}

// Connection goroutines kept for reuse (internal/workerpool): enough for the one-call
// connections that come one after the other, gone a few seconds after a burst.
const (
	idleWorkers    = 4
	idleWorkerTime = 3 * time.Second
)

// NewServer creates a server; name appears in logs.
func NewServer(name string, h Handler, lim Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{name: name, h: h, lim: lim, log: log.With("socket", name), perUID: map[uint32]int{}, ownUID: uint32(os.Getuid()), workers: workerpool.New(idleWorkers, idleWorkerTime), input: newInputBudget(lim)}
}

// protocolError is what a client gets before we hang up on it.
var protocolError = []byte(`{"parameters":{},"error":"io.systemd.Protocol"}` + "\x00")

// refusedPeer answers the first call of a peer the server does not serve.
var refusedPeer = []byte(`{"parameters":{},"error":"` + NamePermissionDenied + `"}` + "\x00")

// Admit restricts the server to the peers admits accepts (by uid); the others
// get their first call answered PermissionDenied, and the connection closed.
// Call it before Serve.
func (s *Server) Admit(admits func(uid uint32) bool) { s.admits = admits }

// OnConnEnd has f called each time a connection has ended, on the goroutine
// that served it: the daemon restarts its memory trimmer's quiet period there,
// so that the heap a burst of lookups grew is given back once it is over. f
// must return at once. Call it before Serve.
func (s *Server) OnConnEnd(f func()) { s.connEnded = f }

// Acceptor is what Serve needs of a listening socket: *net.UnixListener, or
// the *Listener that Listen returns.
type Acceptor interface {
	AcceptUnix() (*net.UnixConn, error)
	Close() error
}

// Serve accepts connections until ctx ends or Shutdown; it owns l.
func (s *Server) Serve(ctx context.Context, l Acceptor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.cancels = append(s.cancels, cancel)
	s.mu.Unlock()
	var conns connGroup
	stop := context.AfterFunc(ctx, func() { l.Close(); conns.shut() })
	defer stop()
	if s.loopReady != nil {
		a, err := newAcceptLoop(ctx, s, l)
		if err != nil {
			s.log.Warn("serving without the accept loop", "err", err)
		}
		if a != nil {
			a.group = &conns
			stopLoop := context.AfterFunc(ctx, a.wake)
			defer stopLoop()
			defer l.Close() // the loop may see the end before stop's goroutine closes it
			return a.run()
		}
	}
	backoff := 5 * time.Millisecond
	for {
		uc, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !transientAcceptError(err) {
				return fmt.Errorf("%s: accept: %w", s.name, err)
			}
			// EMFILE and friends: wait and retry rather than spin or die.
			s.log.Warn("accept failed", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.accept(ctx, uc, &conns)
	}
}

// transientAcceptError: resource exhaustion and aborted handshakes pass; a
// socket that is not listening (EINVAL) or was yanked away (EBADF) never will.
func transientAcceptError(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR, unix.EAGAIN, unix.EPROTO, unix.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) accept(ctx context.Context, uc *net.UnixConn, group *connGroup) {
	c := newConn(uc, s.lim, Peer{})
	peer, err := c.readPeer()
	if err != nil {
		uc.Close()
		return
	}
	c.peer = peer
	privileged, ok := s.take(peer.UID)
	if !ok {
		closePeer(peer)
		uc.Close()
		return
	}
	ctx = s.open(ctx, c, group)
	s.workers.Run(func() {
		defer s.release(peer.UID, privileged)
		s.serve(ctx, c)
	})
}

// take counts a new connection of uid in, unless that would go beyond the
// limits; privileged is whether the peer is.
func (s *Server) take(uid uint32) (privileged, ok bool) {
	privileged = s.privileged(uid)
	s.mu.Lock()
	over := s.conns >= s.lim.MaxConnections
	if !privileged {
		over = over || s.unpriv >= s.lim.MaxConnections-s.lim.ReservedConnections || s.perUID[uid] >= s.lim.MaxConnectionsPerUID
	}
	if over {
		logIt := time.Since(s.lastDrop) > time.Second
		s.lastDrop = time.Now()
		s.mu.Unlock()
		if logIt {
			s.log.Warn("connection limit reached, refusing", "uid", uid)
		}
		return privileged, false
	}
	s.conns++
	if !privileged {
		s.unpriv++
	}
	s.perUID[uid]++
	s.wg.Add(1)
	s.mu.Unlock()
	return privileged, true
}

// release gives back a connection's place once it has ended.
func (s *Server) release(uid uint32, privileged bool) {
	s.mu.Lock()
	s.conns--
	if !privileged {
		s.unpriv--
	}
	if s.perUID[uid]--; s.perUID[uid] == 0 {
		delete(s.perUID, uid)
	}
	s.mu.Unlock()
	if s.connEnded != nil {
		s.connEnded()
	}
	s.wg.Done()
}

// privileged peers are exempt from the per-uid cap and may use the reserve:
// root, and our own uid (the user of a per-user instance).
func (s *Server) privileged(uid uint32) bool { return uid == 0 || uid == s.ownUID }

// ServeConn serves one connected socket (varlinkctl's exec: hands us one) until
// it ends.
func (s *Server) ServeConn(ctx context.Context, uc *net.UnixConn) {
	c := newConn(uc, s.lim, Peer{})
	peer, err := c.readPeer()
	if err != nil {
		uc.Close()
		return
	}
	c.peer = peer
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var group connGroup
	stop := context.AfterFunc(ctx, group.shut)
	defer stop()
	s.mu.Lock()
	s.cancels = append(s.cancels, cancel)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.serve(s.open(ctx, c, &group), c)
}

// open readies an accepted connection for its calls and returns their
// context, which carries the peer.
func (s *Server) open(ctx context.Context, c *Conn, group *connGroup) context.Context {
	c.budget, c.privileged = s.input, s.privileged(c.peer.UID)
	// Shutting the read side wakes a blocked read without racing the deadlines
	// the reader sets, and still lets a handler in flight write its reply.
	if group.add(c) {
		c.group = group
	} else {
		c.uc.CloseRead()
	}
	return c.callContext(ctx)
}

// closeConn is the end of a connection that open readied.
func (s *Server) closeConn(c *Conn) {
	if c.group != nil {
		c.group.remove(c)
		c.group = nil
	}
	c.closeFDs()
	c.freeInput()
	closePeer(c.peer)
	if c.uc == nil {
		sockio.Close(c.raw.fd)
		c.raw.fd = -1
		return
	}
	c.uc.Close()
}

func (s *Server) serve(ctx context.Context, c *Conn) {
	peer := c.peer
	defer func() {
		if r := recover(); r != nil { // a framing bug costs one connection, not the daemon
			s.log.Error("panic serving connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		s.closeConn(c)
	}()
	if s.admits != nil && !s.admits(peer.UID) {
		// Answering the first call, rather than hanging up at once, tells the
		// client why; a call is what it waits on.
		s.log.Debug("peer not admitted", "pid", peer.PID, "uid", peer.UID)
		if _, fds, err := c.ReadMessage(ctx); err == nil {
			closeFiles(fds)
			c.WriteRaw(ctx, refusedPeer)
		}
		return
	}
	if c.sendUnsent() != nil {
		return
	}
	for ctx.Err() == nil {
		msg, fds, err := c.ReadMessage(ctx)
		if err != nil {
			s.readFailed(ctx, c, err)
			return
		}
		if s.answer(ctx, c, msg, fds) != nil {
			return
		}
	}
}

// answer runs the handler on one message and sends what it left buffered; an
// error ends the connection.
func (s *Server) answer(ctx context.Context, c *Conn, msg []byte, fds []*os.File) error {
	err := s.call(ctx, c, msg, fds)
	if ferr := c.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		s.log.Debug("closing connection", "err", err)
	}
	return err
}

// readFailed tells a peer that broke the protocol's bounds why it is hung up
// on; every read error ends the connection.
func (s *Server) readFailed(ctx context.Context, c *Conn, err error) {
	if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrTooManyFDs) || errors.Is(err, ErrInputBudget) {
		s.log.Debug("protocol violation, closing", "err", err, "pid", c.peer.PID, "uid", c.peer.UID)
		c.WriteRaw(ctx, protocolError)
	}
}

var errHandlerPanic = errors.New("handler panicked")

// call runs the handler; a panic costs the client its connection and the fds it
// sent, never the daemon.
func (s *Server) call(ctx context.Context, c *Conn, msg []byte, fds []*os.File) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			closeFiles(fds)
			err = errHandlerPanic
		}
	}()
	return s.h(ctx, c, msg, fds)
}

func closePeer(p Peer) { p.close() }

// Shutdown stops accepting, cancels every connection and waits for them, at
// most until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for _, c := range s.cancels {
		c()
	}
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.workers.Stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PendingInput reports the bytes reserved for incomplete messages.
func (s *Server) PendingInput() int { return s.input.inUse() }

// Stats reports open connections, for tests and diagnostics.
func (s *Server) Stats() (conns int, perUID map[uint32]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[uint32]int, len(s.perUID))
	for k, v := range s.perUID {
		m[k] = v
	}
	return s.conns, m
}
