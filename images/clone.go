package images

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Clone copies the image to newName in the pool directory, read-only when asked:
// trees as a btrfs snapshot when they can, else as a new subvolume (on btrfs) or
// directory holding a copy; raw images as a reflinked or copied file. Block
// devices: EOPNOTSUPP. The copy is made under a hidden temporary name and
// renamed into place when complete: if ctx is cancelled or anything fails, the
// partial copy is deleted and newName never appears.
func (p *Pool) Clone(ctx context.Context, name, newName string, readOnly bool) error {
	if err := ValidName(newName); err != nil {
		return err
	}
	img, err := p.Get(name)
	if err != nil {
		return err
	}
	nameLock, err := p.lockName(newName)
	if err != nil {
		return err
	}
	defer nameLock.release()
	if err := p.nameFree(newName); err != nil {
		return err
	}
	switch img.Type {
	case TypeDirectory, TypeSubvolume:
		err = p.cloneTree(ctx, img, newName, readOnly)
	case TypeRaw:
		err = p.cloneRaw(ctx, img, newName, readOnly)
	default:
		err = fmt.Errorf("image %q is a %s: %w", name, img.Type, unix.EOPNOTSUPP)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errExists(newName)
		}
		return fmt.Errorf("clone image %q to %q: %w", name, newName, err)
	}
	p.cloneAux(img, newName)
	return nil
}

func (p *Pool) cloneRaw(ctx context.Context, img Image, newName string, readOnly bool) error {
	pfd, err := p.setupPool(false)
	if err != nil {
		return err
	}
	unix.Close(pfd)
	mode := uint32(0o644)
	if readOnly {
		mode = 0o444
	}
	return copyRegularAtomic(ctx, img.Path, filepath.Join(p.cfg.PoolPath, newName+".raw"), mode)
}

func (p *Pool) cloneTree(ctx context.Context, img Image, newName string, readOnly bool) (err error) {
	pfd, err := p.setupPool(false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	src, err := unix.Open(img.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(src)

	tmp := tempName(newName)
	defer func() {
		if err != nil {
			_ = removeEntry(context.Background(), pfd, tmp)
		}
	}()

	subvolume := false
	if img.Type == TypeSubvolume && onBtrfs(pfd) {
		// The snapshot is made writable and turned read-only only once complete:
		// the temporary name must stay removable.
		err = snapshotSubvolume(src, pfd, tmp, false)
		subvolume = err == nil
		if subvolume {
			err = withDirAt(pfd, tmp, func(dst int) error { return snapshotNested(ctx, src, dst) })
			if err != nil {
				return err
			}
		}
		if err != nil && !errors.Is(err, unix.EXDEV) && !isNotSupported(err) {
			return err
		}
	}
	if !subvolume {
		if onBtrfs(pfd) && createSubvolume(pfd, tmp) == nil {
			subvolume = true
		} else if err = unix.Mkdirat(pfd, tmp, 0o700); err != nil {
			return err
		}
		dst, err := unix.Openat(pfd, tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = copyTree(ctx, src, dst)
		unix.Close(dst)
		if err != nil {
			return err
		}
	}
	if err = ctx.Err(); err != nil {
		return err
	}

	if subvolume {
		_ = withDirAt(pfd, tmp, func(fd int) error {
			if info, err := subvolInfo(fd); err == nil {
				_ = autoQgroup(fd, info.TreeID, info.ParentID)
				if srcInfo, err := subvolInfo(src); err == nil && img.Type == TypeSubvolume {
					if q, ok := subvolQuota(src, srcInfo.TreeID); ok && q.ReferencedMax != unknown {
						_ = setSubtreeLimit(fd, q.ReferencedMax)
					}
				}
			}
			return nil
		})
	}
	if err = unix.Renameat2(pfd, tmp, pfd, newName, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	if readOnly {
		// After the rename: an immutable directory could not be renamed.
		err = withDirAt(pfd, newName, func(fd int) error {
			if subvolume {
				return setSubvolReadOnly(fd, true)
			}
			return setImmutable(fd, true)
		})
		if err != nil {
			_ = removeEntry(context.Background(), pfd, newName)
			return err
		}
	}
	return nil
}

func withDirAt(dirfd int, name string, f func(fd int) error) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return f(fd)
}

// snapshotNested puts snapshots of the subvolumes nested in the subvolume src
// into its snapshot dst, where a snapshot leaves only empty directories.
func snapshotNested(ctx context.Context, src, dst int) error {
	info, err := subvolInfo(src)
	if err != nil {
		return err
	}
	children, err := childSubvolumes(src, info.TreeID)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir, name := filepath.Split(c.path)
		if err := snapshotNestedOne(ctx, src, dst, dir, name); err != nil {
			return fmt.Errorf("nested subvolume %s: %w", c.path, err)
		}
	}
	return nil
}

func snapshotNestedOne(ctx context.Context, src, dst int, dir, name string) error {
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	child, err := unix.Openat2(src, filepath.Join(".", dir, name), how)
	if err != nil {
		return err
	}
	defer unix.Close(child)
	parent, err := unix.Openat2(dst, filepath.Join(".", dir), how)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if err := snapshotSubvolume(child, parent, name, false); err != nil {
		return err
	}
	return withDirAt(parent, name, func(fd int) error { return snapshotNested(ctx, child, fd) })
}
