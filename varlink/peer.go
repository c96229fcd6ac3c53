package varlink

import (
	"context"
	"net"
	"sync"
	"syscall"

	"github.com/machined-go/machined/internal/quicksys"
	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a connection: its credentials are
// read once at accept, its pidfd on first use.
type Peer struct {
	UID, GID uint32
	PID      int

	pidfd *peerPidfd // shared by the copies of one connection's Peer; nil: none
}

// peerPidfd asks the kernel for the peer's pidfd (SO_PEERPIDFD) only when a
// call needs it, such as Register taking its caller as leader. Most clients
// never do (every userdb lookup through NSS is a connection of its own), and
// the fd would cost two syscalls per connection.
type peerPidfd struct {
	rc   syscall.RawConn
	once sync.Once
	fd   int
	id   uint64
	idOn sync.Once
}

// PIDFD returns the peer's pidfd, -1 when the kernel has none. The connection
// owns it and closes it when it ends; keep a dup, not this fd. It must be
// called while the connection is being served.
func (p Peer) PIDFD() int {
	if p.pidfd == nil {
		return -1
	}
	l := p.pidfd
	l.once.Do(func() {
		l.fd = -1
		l.rc.Control(func(fd uintptr) {
			if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
				l.fd = pfd
			}
		})
	})
	return l.fd
}

// PIDFDID is the pidfs inode of the peer's pidfd, 0 when unknown, read once
// per connection.
func (p Peer) PIDFDID() uint64 {
	fd := p.PIDFD()
	if fd < 0 {
		return 0
	}
	p.pidfd.idOn.Do(func() { p.pidfd.id = quicksys.PidfdID(fd) })
	return p.pidfd.id
}

// close releases the pidfd if one was taken. The connection's last act.
func (p Peer) close() {
	if p.pidfd == nil {
		return
	}
	p.pidfd.once.Do(func() { p.pidfd.fd = -1 }) // none taken: none to take later
	if p.pidfd.fd >= 0 {
		unix.Close(p.pidfd.fd)
		p.pidfd.fd = -1
	}
}

type peerKey struct{}

// peerContext is the context of a connection's calls: the server's, which
// also carries the connection's peer. It lives in the Conn, so that a
// one-call connection does not pay an allocation for context.WithValue.
type peerContext struct {
	context.Context
	peer *Peer
}

func (p *peerContext) Value(key any) any {
	if _, ok := key.(peerKey); ok {
		return p.peer
	}
	return p.Context.Value(key)
}

// callContext returns the context of c's calls under ctx.
func (c *Conn) callContext(ctx context.Context) context.Context {
	c.ctx = peerContext{Context: ctx, peer: &c.peer}
	return &c.ctx
}

// PeerFromContext returns the peer of the connection a call arrived on.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(*Peer)
	if !ok {
		return Peer{}, false
	}
	return *p, true
}

// readPeer reads the peer's credentials; its pidfd, when asked for, is
// c.pidfd.
func (c *Conn) readPeer() (Peer, error) {
	var p Peer
	if c.rc == nil {
		return p, net.ErrClosed
	}
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr != nil {
			return
		}
		p.UID, p.GID, p.PID = cred.Uid, cred.Gid, int(cred.Pid)
	})
	if err == nil {
		err = serr
	}
	c.pidfd.rc = c.rc
	p.pidfd = &c.pidfd
	return p, err
}
