package proc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Owner is the identity a read on behalf of a machine is done as: the uid
// that registered the machine, and the gid chosen for it (the caller decides;
// the registrar's gid is not recorded).
type Owner struct {
	UID, GID uint32
}

// ownEUID is our effective uid; it does not change while we run.
var ownEUID = uint32(os.Geteuid())

// AsOwner runs read with no more privilege over files than owner has. A
// machine's tree is under its owner's control: a path in it (a symlink, a bind
// mount in the leader's mount namespace, which /proc/PID/root follows) may
// lead to any file the daemon can open, so the daemon must not open it as root
// for an unprivileged owner.
//
// For root, and for our own uid, read runs as it is. Otherwise it runs on a
// disposable thread (onDisposableThread) that first gives up, for itself only,
// with raw per-thread syscalls (Go's syscall.Setuid and friends change every
// thread): its supplementary groups, its filesystem gid and uid, and then
// every effective capability but CAP_SYS_PTRACE. Leaving fsuid 0 drops the
// filesystem capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
// ...), so every permission check on the path and the file is the owner's.
// CAP_SYS_PTRACE stays for opening /proc/PID/root of a leader in a user
// namespace: the owner passes that check as the namespace's owner, which the
// kernel judges by euid, and our euid stays 0. It opens no file by itself.
// Failing to give up any of it fails the read: it never runs with more.
func AsOwner(owner Owner, read func() error) error {
	if owner.UID == 0 || owner.UID == ownEUID {
		return read()
	}
	return <-onDisposableThread(func() error {
		if err := becomeOwner(owner); err != nil {
			return err
		}
		return read()
	})
}

// becomeOwner switches the calling thread's filesystem identity to owner and
// clears its effective capabilities but CAP_SYS_PTRACE. The thread must be
// disposable.
func becomeOwner(owner Owner) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("drop supplementary groups: %w", e)
	}
	if err := setFSIDs(owner); err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	caps[0].Effective &= 1 << unix.CAP_SYS_PTRACE
	caps[1].Effective = 0
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("clear effective capabilities: %w", err)
	}
	return nil
}
