package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Locks shared with systemd-nspawn, which takes them on the image it runs: a
// global one in the lock directory named after the image's inode (block devices:
// their device number), which also covers an image reached by another path or
// mounted over, and a local .#NAME.lck next to the image for hosts sharing the
// directory. nspawn takes them as open-file-description locks (fcntl
// F_OFD_SETLK), which do not conflict with flock(2): so must we. Exclusive for a
// writable container, shared for a read-only one; the pool's changes take them
// exclusively and without waiting, so an image in use answers EBUSY.

type lockFile struct {
	fd        int
	path      string
	exclusive bool
}

// takeLock opens (creating) and locks path without waiting; EBUSY when someone
// else holds a conflicting lock.
func takeLock(path string, exclusive bool) (*lockFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
		if exclusive {
			lk.Type = unix.F_WRLCK
		}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
				return nil, fmt.Errorf("%s is locked: %w", path, unix.EBUSY)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The previous owner may have unlinked the file between our open and our
		// lock (it removes it on release): then our lock guards nothing.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if st.Nlink > 0 {
			return &lockFile{fd: fd, path: path, exclusive: exclusive}, nil
		}
		unix.Close(fd)
	}
}

// release drops the lock; the exclusive owner removes the file first, as nspawn
// does, so lock files do not pile up. A shared owner becomes the exclusive one
// when it can, to do the same.
func (l *lockFile) release() {
	if l == nil {
		return
	}
	exclusive := l.exclusive
	if !exclusive {
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		exclusive = unix.FcntlFlock(uintptr(l.fd), unix.F_OFD_SETLK, &lk) == nil
	}
	if exclusive {
		_ = unix.Unlink(l.path)
	}
	unix.Close(l.fd)
}

// imageLock holds the global and local lock of one image path.
type imageLock struct{ global, local *lockFile }

func (l *imageLock) release() {
	if l == nil {
		return
	}
	l.local.release()
	l.global.release()
}

// lockingDisabled honours nspawn's SYSTEMD_NSPAWN_LOCK=0, which turns its locks
// off; both sides must agree.
func lockingDisabled() bool {
	switch strings.ToLower(os.Getenv("SYSTEMD_NSPAWN_LOCK")) {
	case "0", "no", "n", "false", "f", "off":
		return true
	}
	return false
}

func (p *Pool) makeLockDir() {
	_ = os.MkdirAll(filepath.Dir(p.cfg.LockDir), 0o755)
	_ = os.Mkdir(p.cfg.LockDir, 0o700)
}

// lockImagePath takes the image lock on path exclusively, to change the image.
func (p *Pool) lockImagePath(path string) (*imageLock, error) {
	return p.lockImage(path, true)
}

// lockImage takes the image lock on path, exclusive or shared. The host's root
// is never locked exclusively (we run off it); a shared lock on it is no lock.
func (p *Pool) lockImage(path string, exclusive bool) (*imageLock, error) {
	if lockingDisabled() {
		return &imageLock{}, nil
	}
	if filepath.Clean(path) == "/" {
		if !exclusive {
			return &imageLock{}, nil
		}
		return nil, fmt.Errorf("the host's root cannot be locked: %w", unix.EBUSY)
	}
	var global string
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			global = fmt.Sprintf("block-%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFDIR, unix.S_IFREG:
			global = fmt.Sprintf("inode-%d:%d", st.Dev, st.Ino)
		default:
			return nil, fmt.Errorf("lock %s: %w", path, unix.ENOTTY)
		}
	}
	l := &imageLock{}
	// Block devices are host-local: the global lock suffices for them.
	if !pathUnder(path, "/dev") {
		dir, base := filepath.Split(filepath.Clean(path))
		local, err := takeLock(filepath.Join(dir, ".#"+base+".lck"), exclusive)
		switch {
		case err == nil:
			l.local = local
		case !exclusive && errors.Is(err, unix.EROFS):
			// A read-only directory cannot hold the file; nobody can change the
			// image there either.
		default:
			return nil, err
		}
	}
	if global != "" {
		p.makeLockDir()
		g, err := takeLock(filepath.Join(p.cfg.LockDir, global), exclusive)
		if err != nil {
			l.release()
			return nil, err
		}
		l.global = g
	}
	return l, nil
}

// lockName reserves a new image name against concurrent renames and clones, ours
// or another program's.
func (p *Pool) lockName(name string) (*lockFile, error) {
	if name == HostName {
		return nil, fmt.Errorf("name %q is reserved: %w", name, unix.EBUSY)
	}
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if lockingDisabled() {
		return nil, nil
	}
	p.makeLockDir()
	return takeLock(filepath.Join(p.cfg.LockDir, "name-"+name), true)
}
