package varlink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Listener is a socket we bound ourselves. Closing it removes the path only
// while the path still is our socket: a socket file that someone else bound
// there since (another daemon, a test) is not ours to delete.
type Listener struct {
	*net.UnixListener
	path     string
	dev, ino uint64
	once     sync.Once
}

// ErrSocketInUse: a live server answers on the path Listen was asked to bind.
var ErrSocketInUse = errors.New("socket in use by a live server")

// Listen binds a unix socket at path with the given mode, replacing a stale
// socket file but never one that a live server still accepts on.
func Listen(path string, mode os.FileMode) (*Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if liveSocket(path) {
			return nil, fmt.Errorf("%s: %w", path, ErrSocketInUse)
		}
		os.Remove(path)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		os.Remove(path)
		return nil, err
	}
	return &Listener{UnixListener: l, path: path, dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// Close stops listening and removes the socket file if it is still ours.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		var st syscall.Stat_t
		if syscall.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && uint64(st.Ino) == l.ino {
			os.Remove(l.path)
		}
	})
	return err
}

// liveSocket reports whether a server accepts on the socket file at path.
func liveSocket(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
	}
	// EAGAIN: a full backlog, which only a live server has.
	return err == nil || errors.Is(err, syscall.EAGAIN)
}
