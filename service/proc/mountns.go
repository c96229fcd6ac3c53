package proc

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// InMountNS runs f on a disposable thread that has joined p's mount namespace,
// as root. Mounting into a namespace (move_mount) only works from inside it, and
// a Go thread shares its file system context with every other thread, which
// the kernel refuses to move: the thread first takes a private copy
// (unshare(CLONE_FS)), then joins. It is destroyed afterwards, so no goroutine
// ever runs in the container's namespace by accident. The namespace is opened
// before the pidfd is checked, so it is p's even if the PID was reused since.
func InMountNS(p *PidRef, f func() error) error {
	nsfd, err := p.OpenNS("mnt")
	if err != nil {
		return err
	}
	defer unix.Close(nsfd)
	return <-onDisposableThread(func() error {
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare file system context: %w", err)
		}
		if err := unix.Setns(nsfd, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("join mount namespace of pid %d: %w", p.PID, err)
		}
		return f()
	})
}

// SharesMountNS reports whether p runs in our own mount namespace.
func (p *PidRef) SharesMountNS() (bool, error) {
	var ours, theirs unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &ours); err != nil {
		return false, fmt.Errorf("stat our mount namespace: %w", err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(p.PID)+"/ns/mnt", &theirs); err != nil {
		return false, p.gone(fmt.Errorf("stat mount namespace of pid %d: %w", p.PID, err))
	}
	if err := p.Verify(); err != nil {
		return false, err
	}
	return ours.Dev == theirs.Dev && ours.Ino == theirs.Ino, nil
}
