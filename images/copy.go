package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/copystreams"
)

// copyChunk is how much copy_file_range moves per call: small enough for a
// cancelled clone to stop soon, large enough to cost few calls.
const copyChunk = 64 << 20

// tempName returns a name for work in progress next to final: ".#" keeps it out
// of every listing (no image name starts so) and the random part out of the way
// of concurrent work.
func tempName(final string) string {
	return ".#" + final + "." + randomSuffix()
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// copyFileData copies the contents of src to dst: a reflink when the file system
// shares extents, else the data segments one by one (holes stay holes: raw
// images are mostly sparse) with copy_file_range, which the kernel may still
// turn into a reflink or a server-side copy, else with read and write. ctx is
// checked between chunks.
func copyFileData(ctx context.Context, dst, src int) error {
	if unix.IoctlFileClone(dst, src) == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	for off := int64(0); off < st.Size; {
		data, err := unix.Seek(src, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		end := st.Size
		if err != nil {
			data = off // no hole support: all of it is data
		} else if hole, err := unix.Seek(src, data, unix.SEEK_HOLE); err == nil {
			end = min(hole, st.Size)
		}
		if err := copyRange(ctx, dst, src, data, end-data); err != nil {
			return err
		}
		off = end
	}
	return unix.Ftruncate(dst, st.Size)
}

// copyRange copies n bytes at off from src to dst, at the same offset.
func copyRange(ctx context.Context, dst, src int, off, n int64) error {
	useRange := true
	var buf []byte
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if useRange {
			roff, woff := off, off
			c, err := unix.CopyFileRange(src, &roff, dst, &woff, int(min(n, copyChunk)), 0)
			switch {
			case err == nil && c == 0:
				return fmt.Errorf("file shrank while copied: %w", unix.EIO)
			case err == nil:
				off, n = off+int64(c), n-int64(c)
				continue
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS),
				errors.Is(err, unix.EOPNOTSUPP):
				useRange = false
			default:
				return err
			}
		}
		if buf == nil {
			buf = make([]byte, 1<<20)
		}
		r, err := unix.Pread(src, buf[:min(n, int64(len(buf)))], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if r == 0 {
			return fmt.Errorf("file shrank while copied: %w", unix.EIO)
		}
		for w := 0; w < r; {
			c, err := unix.Pwrite(dst, buf[w:r], off+int64(w))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			w += c
		}
		off, n = off+int64(r), n-int64(r)
	}
	return nil
}

// copyFileAtomic copies the regular file src to dst (which must not exist) with
// mode, through a temporary file renamed into place, so that dst is never seen
// half written.
func copyFileAtomic(src, dst string, mode uint32) error {
	return copyRegularAtomic(context.Background(), src, dst, mode)
}

func copyRegularAtomic(ctx context.Context, src, dst string, mode uint32) error {
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file: %w", src, unix.EINVAL)
	}
	tmp := filepath.Join(filepath.Dir(dst), tempName(filepath.Base(dst)))
	dfd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
	if err != nil {
		return err
	}
	err = copyFileData(ctx, dfd, sfd)
	if err == nil {
		err = unix.Fchmod(dfd, mode)
	}
	if err == nil {
		err = unix.Fsync(dfd)
	}
	unix.Close(dfd)
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return err
	}
	return nil
}

// treeCopier copies a directory tree as it is: owners, modes, timestamps,
// extended attributes, hard links, symlinks and device nodes. It stays on the
// source's mount: a directory mounted inside the tree is copied as an empty
// directory.
type treeCopier struct {
	ctx     context.Context
	mountID uint64
	dstRoot int
	// links maps the source (dev, ino) of a multiply linked file to its copy's
	// path below dstRoot.
	links map[[2]uint64]string
	// bg moves the content of large files while the walk goes on, under bgCtx,
	// which also ends when one of them fails.
	bg    *copystreams.Set
	bgCtx context.Context
}

// copyTree copies the contents and the attributes of the directory srcfd into
// the empty directory dstfd. It returns once every background stream has
// ended, so the caller may rename or remove the copy.
func copyTree(ctx context.Context, srcfd, dstfd int) error {
	var stx unix.Statx_t
	if err := unix.Statx(srcfd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return err
	}
	bgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &treeCopier{ctx: ctx, mountID: stx.Mnt_id, dstRoot: dstfd, links: map[[2]uint64]string{},
		bg: copystreams.New(copystreams.Count(), cancel), bgCtx: bgCtx}
	err := c.copyDir(srcfd, dstfd, "")
	if err != nil {
		cancel()
	}
	// A stream's failure is the copy's, unless the walk failed first.
	if bgErr := c.bg.Settle(); bgErr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = bgErr
	}
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(srcfd, &st); err != nil {
		return err
	}
	return c.applyAttrs(srcfd, dstfd, &st)
}

func (c *treeCopier) copyDir(srcfd, dstfd int, rel string) error {
	names, err := readDirNamesFd(srcfd)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.stopped(); err != nil {
			return err
		}
		if err := c.copyEntry(srcfd, dstfd, name, filepath.Join(rel, name)); err != nil {
			return fmt.Errorf("copy %s: %w", filepath.Join(rel, name), err)
		}
	}
	return nil
}

// stopped is the caller's cancellation, else that of a failed stream.
func (c *treeCopier) stopped() error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return c.bgCtx.Err()
}

func (c *treeCopier) copyEntry(srcDir, dstDir int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(srcDir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone meanwhile
		}
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		sfd, err := unix.Openat(srcDir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(sfd)
		if err := unix.Mkdirat(dstDir, name, 0o700); err != nil {
			return err
		}
		dfd, err := unix.Openat(dstDir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		var stx unix.Statx_t
		if err := unix.Statx(sfd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
			return err
		}
		if stx.Mnt_id == c.mountID {
			if err := c.copyDir(sfd, dfd, rel); err != nil {
				return err
			}
		}
		return c.applyAttrs(sfd, dfd, &st)
	case unix.S_IFREG:
		return c.copyFile(srcDir, dstDir, name, rel, &st)
	case unix.S_IFLNK:
		target, err := readlinkat(srcDir, name)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dstDir, name); err != nil {
			return err
		}
		if err := unix.Fchownat(dstDir, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dstDir, name, statTimes(&st), unix.AT_SYMLINK_NOFOLLOW)
	default: // devices, FIFOs, sockets
		if err := unix.Mknodat(dstDir, name, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		if err := unix.Fchownat(dstDir, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(dstDir, name, st.Mode&0o7777, 0); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dstDir, name, statTimes(&st), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// copyFile copies the regular file name, handing its content to a background
// stream when it is large and one is free. A file with other names stays with
// the walk, which records where its first copy went to link the others.
func (c *treeCopier) copyFile(srcDir, dstDir int, name, rel string, st *unix.Stat_t) error {
	key := [2]uint64{st.Dev, st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[key]; ok {
			return unix.Linkat(c.dstRoot, first, dstDir, name, 0)
		}
	}
	sfd, err := unix.Openat(srcDir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	dfd, err := unix.Openat(dstDir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		unix.Close(sfd)
		return err
	}
	if st.Nlink == 1 && st.Size >= copystreams.MinSize && c.bg.Take() {
		meta := *st
		c.bg.Run(func() error {
			defer unix.Close(sfd)
			defer unix.Close(dfd)
			// The attributes after the content, whose writes change the times.
			err := copyFileData(c.bgCtx, dfd, sfd)
			if err == nil {
				err = c.applyAttrs(sfd, dfd, &meta)
			}
			if err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
			return nil
		})
		return nil
	}
	defer unix.Close(sfd)
	defer unix.Close(dfd)
	if err := copyFileData(c.ctx, dfd, sfd); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[key] = rel
	}
	return c.applyAttrs(sfd, dfd, st)
}

// applyAttrs gives dst the owner, mode, extended attributes and timestamps of
// src (stat st). The mode comes after the owner, which would clear set-id bits.
func (c *treeCopier) applyAttrs(src, dst int, st *unix.Stat_t) error {
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	return unix.UtimesNanoAt(dst, "", statTimes(st), unix.AT_EMPTY_PATH)
}

func statTimes(st *unix.Stat_t) []unix.Timespec {
	return []unix.Timespec{st.Atim, st.Mtim}
}

func copyXattrs(src, dst int) error {
	size, err := unix.Flistxattr(src, nil)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return err
	}
	if size == 0 {
		return nil
	}
	list := make([]byte, size)
	if size, err = unix.Flistxattr(src, list); err != nil {
		return err
	}
	for _, name := range splitNul(list[:size]) {
		vsize, err := unix.Fgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Fgetxattr(src, name, val); err != nil {
			continue
		}
		if err := unix.Fsetxattr(dst, name, val[:vsize], 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

func readlinkat(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readDirNamesFd lists the directory fd (without "." and ".."), leaving fd's
// offset where it was found irrelevant: it reads through a duplicate.
func readDirNamesFd(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(dfd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
