// Package containerfs moves files and mounts between the host and a
// container: the tree copy of CopyFrom/CopyTo and the bind mount of BindMount.
//
// The container side is always reached through an fd of the leader's root
// (/proc/PID/root, pinned and checked against the pidfd by service/proc) with
// openat2(RESOLVE_IN_ROOT), so neither ".." nor an absolute symlink planted by
// the container leads out of its tree; below the first directory every entry
// is opened by name relative to its parent's fd with O_NOFOLLOW, so symlinks
// are copied as links and never followed. That fd already shows the
// container's own mounts (a path walk from it crosses the mounts of the
// leader's mount namespace), so a copy never joins a namespace; only the final
// move_mount of a bind mount does, on a disposable thread (proc.InMountNS).
//
// Every file system call on either side runs with the identity the caller
// chooses (a proc.OwnerThread): the machine's owner inside the container, the
// caller on the host. The data itself moves between already opened fds.
//
// Of this module the package imports service/proc, internal/getdents and
// internal/copystreams only.
package containerfs
