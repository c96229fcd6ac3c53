package images

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Remove deletes the image and its auxiliary files. A symlink in the search path
// is removed, not what it points to; a block device under /dev stays (only its
// auxiliary files go). A tree is first renamed out of sight, then deleted: if
// ctx is cancelled meanwhile the deletion stops and what is left carries a
// ".#removing." name no listing shows, never the image's; Clean finishes it.
func (p *Pool) Remove(ctx context.Context, name string) error {
	img, err := p.Get(name)
	if err != nil {
		return err
	}
	return p.remove(ctx, img)
}

func (p *Pool) remove(ctx context.Context, img Image) error {
	if immutableImage(img) {
		return errReadOnly(img)
	}
	lock, err := p.lockImagePath(img.Path)
	if err != nil {
		return err
	}
	defer lock.release()
	if err := ctx.Err(); err != nil {
		return err
	}

	var lst unix.Stat_t
	if err := unix.Lstat(img.Path, &lst); err != nil {
		return fmt.Errorf("remove image %q: %w", img.Name, err)
	}
	switch {
	case lst.Mode&unix.S_IFMT == unix.S_IFLNK:
		err = unix.Unlink(img.Path)
	case img.Type == TypeBlock && pathUnder(img.Path, "/dev"):
		// A real device: leave the node to udev.
	case img.Type == TypeRaw || img.Type == TypeBlock:
		err = unix.Unlink(img.Path)
	case img.Type == TypeDirectory || img.Type == TypeSubvolume:
		err = removeTreeImage(ctx, img.Path)
	default:
		err = unix.EOPNOTSUPP
	}
	if err != nil {
		return fmt.Errorf("remove image %q: %w", img.Name, err)
	}
	p.removeAux(img)
	return nil
}

// removeTreeImage moves the directory or subvolume at path to a hidden name and
// deletes it there.
func removeTreeImage(ctx context.Context, path string) error {
	dir, base := filepath.Split(path)
	pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// The immutable attribute would refuse the rename and the deletion.
	_ = setImmutablePath(path, false)
	tmp := removingPrefix + randomSuffix()
	if err := unix.Renameat2(pfd, base, pfd, tmp, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	return removeEntry(ctx, pfd, tmp)
}

// removeEntry deletes name in the directory dirfd, recursively: nested btrfs
// subvolumes are destroyed (with their qgroups), other mounts are not entered.
func removeEntry(ctx context.Context, dirfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		err := unix.Unlinkat(dirfd, name, 0)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if isSubvolume(fd, &st) {
		return removeSubvolume(ctx, dirfd, name, fd)
	}
	if err := removeContents(ctx, fd, st.Dev); err != nil {
		return err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// removeContents empties the directory fd; dev is the device it lives on, so
// that mount points inside are left alone (their rmdir then fails with EBUSY).
func removeContents(ctx context.Context, fd int, dev uint64) error {
	names, err := readDirNamesFd(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev != dev && st.Ino != btrfsFirstFreeObjectID {
			return fmt.Errorf("%s is a mount point: %w", n, unix.EBUSY)
		}
		if err := removeEntry(ctx, fd, n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// removeSubvolume destroys the subvolume name (open as fd) in dirfd, first the
// subvolumes nested in it (the kernel refuses to destroy a subvolume holding
// others), then its qgroups.
func removeSubvolume(ctx context.Context, dirfd int, name string, fd int) error {
	info, infoErr := subvolInfo(fd)
	// A read-only subvolume's nested ones could not be unlinked from it.
	_ = setSubvolReadOnly(fd, false)
	err := destroySubvolume(dirfd, name)
	if errors.Is(err, unix.ENOTEMPTY) {
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err != nil {
			return err
		}
		if err = removeNestedSubvolumes(ctx, fd, st.Dev); err != nil {
			return err
		}
		err = destroySubvolume(dirfd, name)
	}
	if err != nil {
		return err
	}
	if infoErr == nil {
		removeSubvolQgroups(dirfd, info.TreeID)
	}
	return nil
}

// removeNestedSubvolumes destroys the subvolumes below the directory fd (on
// device dev, its subvolume's) and leaves everything else.
func removeNestedSubvolumes(ctx context.Context, fd int, dev uint64) error {
	names, err := readDirNamesFd(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		cfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		switch {
		case isSubvolume(cfd, &st):
			err = removeSubvolume(ctx, fd, n, cfd)
		case st.Dev == dev:
			err = removeNestedSubvolumes(ctx, cfd, dev)
		}
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// removeSubvolQgroups removes the qgroups of a destroyed subvolume: its subtree
// qgroup and its own. Best effort: the kernel may still be cleaning up.
func removeSubvolQgroups(fd int, subvol uint64) {
	if parents, err := qgroupParents(fd, subvol); err == nil {
		for _, q := range parents {
			if q&(1<<qgroupLevelShift-1) == subvol {
				_ = destroyQgroup(fd, q)
			}
		}
	}
	_ = destroyQgroup(fd, subvol)
}

// removingPrefix names a tree whose removal started: ".#" keeps it out of every
// listing.
const removingPrefix = ".#removing."

// sweepRemovals finishes the removals that were stopped half way in the
// directory dir. A removal in progress holds the global lock of its tree (the
// inode does not change with the rename), so such trees are left alone.
func (p *Pool) sweepRemovals(ctx context.Context, dir string) error {
	if lockingDisabled() {
		return nil // no way to tell a stopped removal from a running one
	}
	names, err := readDirNamesPath(dir)
	if err != nil {
		return nil
	}
	for _, n := range names {
		if !strings.HasPrefix(n, removingPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(dir, n)
		lock, err := p.lockImagePath(path)
		if err != nil {
			continue // in progress, or gone
		}
		err = func() error {
			defer lock.release()
			pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(pfd)
			return removeEntry(ctx, pfd, n)
		}()
		if err != nil {
			return fmt.Errorf("finishing the removal of %s: %w", path, err)
		}
	}
	return nil
}

func readDirNamesPath(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirNamesFd(fd)
}
