package images

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// errReadOnly is the answer for images nobody may change: vendor images, the
// host, and (for MarkReadOnly) hidden ones.
func errReadOnly(img Image) error {
	return fmt.Errorf("image %q is read-only: %w", img.Name, unix.EROFS)
}

// immutableImage reports whether img may not be changed at all.
func immutableImage(img Image) bool { return img.Vendor() || img.Host() }

// versioned reports whether img was picked from a NAME.v/ directory.
func versioned(img Image) bool { return strings.HasSuffix(filepath.Dir(img.Path), ".v") }

// errExists is the answer for a name already taken.
func errExists(name string) error {
	return fmt.Errorf("%w: %q: %w", ErrImageExists, name, unix.EEXIST)
}

// Rename renames the image within its directory (a raw image keeps its .raw)
// together with its auxiliary files. The immutable attribute of a directory
// image survives the rename.
func (p *Pool) Rename(name, newName string) error {
	if err := ValidName(newName); err != nil {
		return err
	}
	img, err := p.Get(name)
	if err != nil {
		return err
	}
	if immutableImage(img) {
		return errReadOnly(img)
	}
	if versioned(img) {
		// The entries of NAME.v/ carry the name: renaming one would only hide it.
		return fmt.Errorf("image %q is versioned: %w", name, unix.EOPNOTSUPP)
	}
	lock, err := p.lockImagePath(img.Path)
	if err != nil {
		return err
	}
	defer lock.release()
	nameLock, err := p.lockName(newName)
	if err != nil {
		return err
	}
	defer nameLock.release()
	if err := p.nameFree(newName); err != nil {
		return err
	}

	dir := filepath.Dir(img.Path)
	newPath := filepath.Join(dir, newName)
	immutable := false
	switch img.Type {
	case TypeDirectory:
		if immutable = immutablePath(img.Path); immutable {
			_ = setImmutablePath(img.Path, false)
		}
	case TypeBlock:
		if pathUnder(img.Path, "/dev") {
			// udev names device nodes, not us.
			return fmt.Errorf("block device %s cannot be renamed: %w", img.Path, unix.EROFS)
		}
	case TypeRaw:
		newPath += ".raw"
	}
	err = unix.Renameat2(unix.AT_FDCWD, img.Path, unix.AT_FDCWD, newPath, unix.RENAME_NOREPLACE)
	if immutable {
		if err == nil {
			_ = setImmutablePath(newPath, true)
		} else {
			_ = setImmutablePath(img.Path, true)
		}
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errExists(newName)
		}
		return fmt.Errorf("rename image %q to %q: %w", name, newName, err)
	}
	p.renameAux(img, newName)
	return nil
}

// nameFree fails with ErrImageExists when any directory of the search path
// holds name (or it is the host's).
func (p *Pool) nameFree(name string) error {
	_, err := p.Get(name)
	switch {
	case err == nil:
		return errExists(name)
	case errors.Is(err, ErrNoSuchImage):
		return nil
	default:
		return err
	}
}

// MarkReadOnly sets or clears the image's read-only state: the subvolume's flag,
// a directory's immutable attribute (of its top directory only: the modes inside
// belong to the container), the owner's write bit of a raw file, a block
// device's read-only flag.
func (p *Pool) MarkReadOnly(name string, ro bool) error {
	img, err := p.Get(name)
	if err != nil {
		return err
	}
	if immutableImage(img) || img.Hidden() {
		return errReadOnly(img)
	}
	lock, err := p.lockImagePath(img.Path)
	if err != nil {
		return err
	}
	defer lock.release()

	switch img.Type {
	case TypeSubvolume:
		err = withDir(img.Path, func(fd int) error { return setSubvolReadOnly(fd, ro) })
	case TypeDirectory:
		err = setImmutablePath(img.Path, ro)
	case TypeRaw:
		var st unix.Stat_t
		if err = unix.Stat(img.Path, &st); err == nil {
			mode := st.Mode & 0o444
			if !ro {
				mode |= 0o200
			}
			err = unix.Chmod(img.Path, mode)
		}
	case TypeBlock:
		var fd int
		if fd, err = unix.Open(img.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0); err == nil {
			v := 0
			if ro {
				v = 1
			}
			err = unix.IoctlSetPointerInt(fd, unix.BLKROSET, v)
			unix.Close(fd)
		}
	}
	if err != nil {
		return fmt.Errorf("mark image %q read-only=%v: %w", name, ro, err)
	}
	return nil
}

func withDir(path string, f func(fd int) error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return f(fd)
}

// errNoQuota is the answer for quota requests where btrfs does not hold the
// image or pool.
func errNoQuota(what string) error {
	return fmt.Errorf("quota on %s needs btrfs: %w", what, unix.EOPNOTSUPP)
}

// SetLimit limits the bytes the subvolume image (with everything below it) may
// reference; math.MaxUint64 lifts the limit. Other types: EOPNOTSUPP.
func (p *Pool) SetLimit(name string, limit uint64) error {
	img, err := p.Get(name)
	if err != nil {
		return err
	}
	if immutableImage(img) {
		return errReadOnly(img)
	}
	if img.Type != TypeSubvolume {
		return errNoQuota(fmt.Sprintf("image %q", name))
	}
	err = withDir(img.Path, func(fd int) error { return setSubtreeLimit(fd, limit) })
	if err != nil {
		return fmt.Errorf("set limit of image %q: %w", name, err)
	}
	return nil
}

// setSubtreeLimit sets the limit on the subvolume fd's own qgroup and on its
// subtree qgroup, which it creates when missing: the subtree one is what counts
// the snapshots and subvolumes below.
func setSubtreeLimit(fd int, limit uint64) error {
	info, err := subvolInfo(fd)
	if err != nil {
		return err
	}
	// Without quota the kernel answers with errnos that name something else
	// (ENOENT for the missing quota tree, ENOTCONN): say what it is.
	if _, err := qgroupParents(fd, info.TreeID); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("btrfs quota is not enabled: %w", unix.EOPNOTSUPP)
	}
	_ = qgroupSetLimit(fd, info.TreeID, limit)
	_ = autoQgroup(fd, info.TreeID, info.ParentID)
	id, err := subtreeQgroup(fd, info.TreeID)
	if err != nil {
		return err
	}
	if id == info.TreeID {
		return unix.ESRCH // no subtree qgroup could be set up
	}
	return qgroupSetLimit(fd, id, limit)
}

// autoQgroup gives the subvolume a qgroup of its own one level above its leaf
// (reusing its id), member of the qgroups its parent belongs to, unless it
// already belongs to one: the layout upstream sets up, so that a limit on it
// covers the subvolume and whatever is nested below.
func autoQgroup(fd int, subvol, parent uint64) error {
	if ps, err := qgroupParents(fd, subvol); err != nil || len(ps) > 0 {
		return err
	}
	var pq []uint64
	if parent != 0 {
		var err error
		if pq, err = qgroupParents(fd, parent); err != nil {
			return err
		}
	}
	lowest := uint64(256)
	for _, q := range pq {
		lowest = min(lowest, q>>qgroupLevelShift)
	}
	if lowest <= 1 {
		return unix.EBUSY // no level left for an intermediate qgroup
	}
	id := (lowest-1)<<qgroupLevelShift | subvol
	created := false
	if err := qgroupCreate(fd, id, true); err == nil {
		created = true
	} else if !errors.Is(err, unix.EEXIST) {
		return err
	}
	for _, q := range append(pq, 0) {
		child, par := id, q
		if q == 0 {
			child, par = subvol, id
		}
		if err := qgroupAssign(fd, child, par, true); err != nil && !errors.Is(err, unix.EEXIST) {
			if created {
				_ = destroyQgroup(fd, id)
			}
			return err
		}
	}
	return nil
}

// destroyQgroup removes the qgroup id after taking it out of every relation.
func destroyQgroup(fd int, id uint64) error {
	rel, err := qgroupRelations(fd, id)
	if err != nil {
		return err
	}
	for _, other := range rel {
		if other > id {
			_ = qgroupAssign(fd, id, other, false)
		} else {
			_ = qgroupAssign(fd, other, id, false)
		}
	}
	return qgroupCreate(fd, id, false)
}

// SetPoolLimit limits the bytes the pool directory may hold. The pool is created
// first when missing (a subvolume with quota on btrfs); off btrfs: EOPNOTSUPP.
func (p *Pool) SetPoolLimit(limit uint64) error {
	fd, err := p.setupPool(true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !onBtrfs(fd) {
		return errNoQuota("the pool " + p.cfg.PoolPath)
	}
	if err := setSubtreeLimit(fd, limit); err != nil {
		if isNotSupported(err) {
			return errNoQuota("the pool " + p.cfg.PoolPath)
		}
		return fmt.Errorf("set pool limit: %w", err)
	}
	return nil
}

// setupPool opens the pool directory, making it first when missing (on btrfs as
// a subvolume, so that it can carry a quota), and with quota enables btrfs quota
// and gives the pool its subtree qgroup, as upstream prepares /var/lib/machines
// for a pool limit. Quota costs every write on the file system: only a limit
// asks for it.
func (p *Pool) setupPool(quota bool) (int, error) {
	pool := p.cfg.PoolPath
	if fd, err := unix.Open(pool, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		if quota {
			p.enablePoolQuota(fd)
		}
		return fd, nil
	} else if !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("open pool %s: %w", pool, err)
	}
	parent := filepath.Dir(pool)
	if err := mkdirAll(parent); err != nil {
		return -1, fmt.Errorf("create pool %s: %w", pool, err)
	}
	err := withDir(parent, func(pfd int) error {
		if onBtrfs(pfd) {
			if err := createSubvolume(pfd, filepath.Base(pool)); err == nil {
				return unix.Fchmodat(pfd, filepath.Base(pool), 0o700, 0)
			}
		}
		return unix.Mkdirat(pfd, filepath.Base(pool), 0o700)
	})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create pool %s: %w", pool, err)
	}
	fd, err := unix.Open(pool, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open pool %s: %w", pool, err)
	}
	if quota {
		p.enablePoolQuota(fd)
	}
	return fd, nil
}

func (p *Pool) enablePoolQuota(fd int) {
	if !onBtrfs(fd) {
		return
	}
	_ = enableQuota(fd)
	if info, err := subvolInfo(fd); err == nil {
		_ = autoQgroup(fd, info.TreeID, info.ParentID)
	}
}

func mkdirAll(dir string) error {
	var st unix.Stat_t
	if unix.Stat(dir, &st) == nil {
		return nil
	}
	if err := mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := unix.Mkdir(dir, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// PoolUsage returns the bytes the pool directory holds and its limit, from the
// btrfs quota of its subtree; math.MaxUint64 for what is unknown (off btrfs,
// quota off).
func (p *Pool) PoolUsage() (usage, limit uint64) {
	fd, err := unix.Open(p.cfg.PoolPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return unknown, unknown
	}
	defer unix.Close(fd)
	if !onBtrfs(fd) {
		return unknown, unknown
	}
	info, err := subvolInfo(fd)
	if err != nil {
		return unknown, unknown
	}
	// Unlike an image's, the pool's numbers are reported during a rescan too:
	// the limit is right, the usage catches up.
	id, err := subtreeQgroup(fd, info.TreeID)
	if err != nil {
		return unknown, unknown
	}
	q, err := qgroupQuota(fd, id)
	if err != nil {
		return unknown, unknown
	}
	return q.Referenced, q.ReferencedMax
}
