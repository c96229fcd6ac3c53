package quicksys

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// PidfdID returns the pidfs inode number of a pidfd the caller keeps owning,
// or 0 when pidfds do not live on pidfs or fd is not usable. On pidfs the
// number is unique to the process for the whole boot, so it tells a process
// from a later one with the same PID.
func PidfdID(fd int) uint64 {
	var st unix.Stat_t
	if fd < 0 || !PidfdInodeSupported() || Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// PidfdInodeSupported reports whether pidfds live on pidfs (kernel >= 6.9).
// Before pidfs every pidfd shared the one anon-inode. The answer is a property
// of the running kernel and is computed once.
func PidfdInodeSupported() bool { return onPidfs() }

var onPidfs = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && int64(sfs.Type) == unix.PID_FS_MAGIC
})
