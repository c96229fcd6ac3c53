package varlink

import (
	"context"
	"net"
	"sync"

	"github.com/machined-go/machined/service/proc"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a connection, read once at accept.
type Peer struct {
	UID, GID uint32
	PID      int
	// PIDFD is the peer's pidfd (SO_PEERPIDFD), -1 when the kernel has none. The
	// connection owns it and closes it when it ends; keep a dup, not this fd.
	PIDFD int

	pidfdID *pidfdIDCache // shared by the copies of one connection's Peer
}

type pidfdIDCache struct {
	once sync.Once
	id   uint64
}

// PIDFDID is the pidfs inode of PIDFD, 0 when unknown. It is read once per
// connection, on first use: a client registering many machines pays one
// fstat, and one that never asks pays none.
func (p Peer) PIDFDID() uint64 {
	if p.pidfdID == nil || p.PIDFD < 0 {
		return 0
	}
	p.pidfdID.once.Do(func() { p.pidfdID.id = proc.PidfdID(p.PIDFD) })
	return p.pidfdID.id
}

type peerKey struct{}

// PeerFromContext returns the peer of the connection a call arrived on.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

func readPeer(c *net.UnixConn) (Peer, error) {
	p := Peer{PIDFD: -1, pidfdID: &pidfdIDCache{}}
	rc, err := c.SyscallConn()
	if err != nil {
		return p, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr != nil {
			return
		}
		p.UID, p.GID, p.PID = cred.Uid, cred.Gid, int(cred.Pid)
		if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			p.PIDFD = pfd
		}
	})
	if err == nil {
		err = serr
	}
	return p, err
}
