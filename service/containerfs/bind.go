package containerfs

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// ErrNoIDMap says the source's file system cannot be idmapped.
var ErrNoIDMap = errors.New("the file system does not support idmapped mounts")

// Bind describes one bind mount into a container.
type Bind struct {
	Source      string // host path
	Destination string // path inside the container
	ReadOnly    bool
	Mkdir       bool // create the destination (and its parents) when missing
	// UserNS, when >= 0, is the container's user namespace: the mount is
	// idmapped through it, so host ids appear inside as the container maps them.
	UserNS int
}

// BindMount mounts b.Source of the host on b.Destination inside the container
// whose leader is leader and whose root is rootfd. The source is opened as
// host (the caller), the destination resolved and created inside the
// container's root as container (the machine's owner); only the mount calls
// run as root: open_tree(OPEN_TREE_CLONE) of the source, mount_setattr for
// read-only and the idmap, and move_mount from inside the leader's mount
// namespace, which the kernel requires of the target.
func BindMount(leader *proc.PidRef, rootfd int, host, container *proc.OwnerThread, b Bind) error {
	var src int
	err := host.Do(func() error {
		var err error
		src, err = unix.Open(b.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", b.Source, err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return fmt.Errorf("stat %s: %w", b.Source, err)
	}
	tree, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("clone mount of %s: %w", b.Source, err)
	}
	defer unix.Close(tree)
	if err := setMountAttrs(tree, b); err != nil {
		return err
	}
	var dst int
	err = container.Do(func() error {
		var err error
		dst, err = mountPoint(rootfd, b.Destination, st.Mode&unix.S_IFMT == unix.S_IFDIR, b.Mkdir)
		return err
	})
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	err = proc.InMountNS(leader, func() error {
		return unix.MoveMount(tree, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	})
	if err != nil {
		return fmt.Errorf("mount %s on %s in the machine's namespace: %w", b.Source, b.Destination, err)
	}
	return nil
}

// setMountAttrs makes the detached mount read-only and idmapped as b asks.
func setMountAttrs(tree int, b Bind) error {
	var attr unix.MountAttr
	if b.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if b.UserNS >= 0 {
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(b.UserNS)
	}
	if attr.Attr_set == 0 {
		return nil
	}
	err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr)
	switch {
	case err == nil:
		return nil
	case b.UserNS >= 0 && errors.Is(err, unix.EINVAL):
		// The kernel answers EINVAL when the file system of the source
		// cannot idmap (no FS_ALLOW_IDMAP) or the mount is not one it may
		// idmap: nothing else about the call can be wrong here.
		return fmt.Errorf("%s: %w (%v)", b.Source, ErrNoIDMap, err)
	case b.UserNS >= 0:
		return fmt.Errorf("idmap mount of %s: %w", b.Source, err)
	}
	return fmt.Errorf("make mount of %s read-only: %w", b.Source, err)
}

// mountPoint opens the destination inside the tree of rootfd (O_PATH). With
// mkdir, missing parents are made (0755) and a missing destination becomes a
// mount point of the source's type: a directory (0700) or an empty file (0600).
func mountPoint(rootfd int, dest string, dir, mkdir bool) (int, error) {
	fd, err := proc.OpenInRoot(rootfd, dest, unix.O_PATH)
	if err == nil || !mkdir || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	comps := strings.Split(strings.Trim(dest, "/"), "/")
	for i := 1; i < len(comps); i++ {
		if err := makeInRoot(rootfd, "/"+strings.Join(comps[:i], "/"), func(parent int, name string) error {
			return unix.Mkdirat(parent, name, 0o755)
		}); err != nil {
			return -1, err
		}
	}
	err = makeInRoot(rootfd, dest, func(parent int, name string) error {
		if dir {
			return unix.Mkdirat(parent, name, 0o700)
		}
		return unix.Mknodat(parent, name, unix.S_IFREG|0o600, 0)
	})
	if err != nil {
		return -1, err
	}
	return proc.OpenInRoot(rootfd, dest, unix.O_PATH)
}

// makeInRoot creates p inside the tree of rootfd with mk, unless something is
// there already.
func makeInRoot(rootfd int, p string, mk func(parent int, name string) error) error {
	parent, name, err := OpenParentInRoot(rootfd, p)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := mk(parent, name); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("create %s in the container: %w", p, err)
	}
	return nil
}
