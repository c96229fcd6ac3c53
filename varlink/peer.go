package varlink

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a connection, read once at accept.
type Peer struct {
	UID, GID uint32
	PID      int
	// PIDFD is the peer's pidfd (SO_PEERPIDFD), -1 when the kernel has none. The
	// connection owns it and closes it when it ends; keep a dup, not this fd.
	PIDFD int
}

type peerKey struct{}

// PeerFromContext returns the peer of the connection a call arrived on.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

func readPeer(c *net.UnixConn) (Peer, error) {
	p := Peer{PIDFD: -1}
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
