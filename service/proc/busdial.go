package proc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// DialInRoot connects to the unix stream socket at path inside p's root
// (resolved like OpenPTY's device, as owner) and returns the connected socket.
//
// The listener learns who connected from the credentials the kernel records
// at connect() (SO_PEERCRED: the connecting thread's euid and egid, seen
// through the listener's user namespace). A connection made by the daemon as
// root would show as the overflow uid to a service in a user namespace, and as
// the host's root to anything else. So the connect() runs on a disposable
// thread that first becomes as, fully and for itself only (raw setgroups,
// setresgid, setresuid: no capability survives), after the socket was found
// with owner's rights; connect() then reaches it through /proc/self/fd, which
// needs no rights over the container's tree. as should be the uid the
// container's root maps to: the service then sees its own root.
//
// A path that does not exist, or names no socket, is ENOENT; a listener whose
// queue is full answers EAGAIN at once rather than making us wait.
func DialInRoot(p *PidRef, path string, owner, as Owner) (*os.File, error) {
	type result struct {
		fd  int
		err error
	}
	r := <-onDisposableThread(func() result {
		fd, err := dialInRoot(p, path, owner, as)
		return result{fd, err}
	})
	if r.err != nil {
		return nil, fmt.Errorf("connect to %s in pid %d: %w", path, p.PID, r.err)
	}
	return os.NewFile(uintptr(r.fd), "unix:"+path), nil
}

// dialInRoot does DialInRoot's work on the calling thread, which it changes
// for good.
func dialInRoot(p *PidRef, path string, owner, as Owner) (int, error) {
	sock, err := findSocket(p, path, owner)
	if err != nil {
		return -1, err
	}
	defer unix.Close(sock)
	if as.UID != ownEUID || as.GID != uint32(os.Getegid()) {
		if err := becomeFully(as); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(sock)})
	if err == unix.EINPROGRESS {
		err = unix.EAGAIN
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// findSocket opens path in p's root as an O_PATH fd, with owner's rights over
// the tree (the thread's filesystem identity only: what follows still needs
// the capability to change ids, which AsOwner would give up).
func findSocket(p *PidRef, path string, owner Owner) (int, error) {
	if owner.UID != 0 && owner.UID != ownEUID {
		if err := setFSIDs(owner); err != nil {
			return -1, err
		}
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(p.PID)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, p.gone(fmt.Errorf("open root of pid %d: %w", p.PID, err))
	}
	defer unix.Close(root)
	if err := p.Verify(); err != nil {
		return -1, err
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	var fd int
	for range 8 {
		if fd, err = unix.Openat2(root, path, &how); err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a socket: %w", path, syscall.ENOENT)
	}
	if owner.UID != 0 && owner.UID != ownEUID {
		// Back to our own filesystem identity for the switch that follows.
		unix.RawSyscall(unix.SYS_SETFSUID, uintptr(ownEUID), 0, 0)
		unix.RawSyscall(unix.SYS_SETFSGID, uintptr(os.Getegid()), 0, 0)
	}
	return fd, nil
}

// setFSIDs switches the calling thread's filesystem gid and uid to owner's,
// which takes the filesystem capabilities with them.
func setFSIDs(owner Owner) error {
	// setfsgid and setfsuid answer the previous value, never an error; asking
	// again with an id the kernel refuses reads back what is in effect.
	const query = uintptr(^uint32(0))
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(owner.GID), 0, 0)
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, query, 0, 0); uint32(got) != owner.GID {
		return fmt.Errorf("set fsgid %d: %w", owner.GID, syscall.EPERM)
	}
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(owner.UID), 0, 0)
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, query, 0, 0); uint32(got) != owner.UID {
		return fmt.Errorf("set fsuid %d: %w", owner.UID, syscall.EPERM)
	}
	return nil
}

// becomeFully makes the calling thread as, every id of it: no supplementary
// groups, real, effective and saved gid and uid. Leaving uid 0 this way clears
// every capability. The thread must be disposable.
func becomeFully(as Owner) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("drop supplementary groups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(as.GID), uintptr(as.GID), uintptr(as.GID)); e != 0 {
		return fmt.Errorf("set gid %d: %w", as.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(as.UID), uintptr(as.UID), uintptr(as.UID)); e != 0 {
		return fmt.Errorf("set uid %d: %w", as.UID, e)
	}
	return nil
}
