package varlink

import (
	"fmt"
	"os"
	"path/filepath"
)

// Alias is a symbolic link to one of our sockets under another name: an entry
// of the Varlink registry (RUNTIME/varlink/registry/INTERFACE), or the name of
// a second interface served on the same socket. It replaces a stale link or a
// socket file nobody accepts on (an earlier daemon's), never a live socket or
// anything else, and Close removes it only while it still points where we
// made it point.
type Alias struct {
	path, target string
}

// NewAlias makes path a symbolic link to target, creating path's directory.
func NewAlias(path, target string) (*Alias, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
		case fi.Mode()&os.ModeSocket != 0 && !liveSocket(path):
		case fi.Mode()&os.ModeSocket != 0:
			return nil, fmt.Errorf("%s: %w", path, ErrSocketInUse)
		default:
			return nil, fmt.Errorf("%s exists and is not a socket or a link", path)
		}
	}
	// Made aside and renamed over, so a client never finds the name missing.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &Alias{path: path, target: target}, nil
}

// Close removes the link if it is still ours.
func (a *Alias) Close() error {
	if got, err := os.Readlink(a.path); err == nil && got == a.target {
		return os.Remove(a.path)
	}
	return nil
}
