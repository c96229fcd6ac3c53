package varlink

import "golang.org/x/sys/unix"

// varlinkXattr is the extended attribute that marks a socket as speaking
// Varlink, so that tools can find Varlink entry points among the sockets of a
// system: "entrypoint" on the inode clients connect to, "listen" on the
// listening socket itself.
const varlinkXattr = "user.varlink"

// Label marks the socket as a Varlink entry point. Linux refuses user.*
// attributes on sockets (EPERM) before version 7.0, so the error is for the
// log only: nothing depends on the label.
func (l *Listener) Label() error {
	if err := unix.Setxattr(l.path, varlinkXattr, []byte("entrypoint"), 0); err != nil {
		return err
	}
	rc, err := l.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Fsetxattr(int(fd), varlinkXattr, []byte("listen"), 0)
	}); err != nil {
		return err
	}
	return serr
}
