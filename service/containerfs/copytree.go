package containerfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/copystreams"
	"github.com/machined-go/machined/internal/getdents"
	"github.com/machined-go/machined/service/proc"
)

// Bounds of one copy. A container controls the tree CopyFrom walks: the depth
// bounds the fds and stack one copy holds (one directory fd per level), and
// the hard-link table the fds kept to relink later names of a file.
const (
	MaxDepth     = 256
	maxHardlinks = 1024
	maxXattrList = 64 << 10
	maxXattrSize = 64 << 10
	dataChunk    = 8 << 20 // bytes per copy_file_range call: how often a copy looks at its context
)

// tempPrefix starts the names a copy writes under before renaming: a
// cancelled copy leaves nothing under its final name.
const tempPrefix = ".#machined-copy-"

// Side is one end of a copy: the entry Name in the directory Dir (an O_PATH
// fd), and the identity every file system call on that side runs as.
type Side struct {
	Dir  int
	Name string
	As   *proc.OwnerThread
}

// Ownership says who owns what a copy creates. Without Chown, entries belong
// to whoever created them (the destination side's identity). With it, they
// get the source's owner, or UID/GID when Override is set.
type Ownership struct {
	Chown    bool
	Override bool
	UID, GID uint32
}

// Options of a copy.
type Options struct {
	// Replace lets a non-directory replace an existing entry of the same name;
	// without it that is EEXIST. Directories are always merged into an
	// existing directory.
	Replace bool
	Own     Ownership
	// MaxDepth bounds the nesting of directories below the top (MaxDepth when 0).
	MaxDepth int
}

// Copy copies src to dst as upstream's copy_tree does with reflinks, merging
// and hard links: regular files (cloned where the file system can, else
// copy_file_range), directories, symlinks (as links), FIFOs and device nodes;
// modes, timestamps and user.* extended attributes; ownership as opt says.
// Entries are written under a temporary name and renamed into place, so ctx
// ending (the caller left, the machine went away) leaves complete entries and
// temporary ones removed, never a partial file under its final name.
func Copy(ctx context.Context, src, dst Side, opt Options) error {
	return copyTree(ctx, src, dst, opt, false)
}

// CopyAlone is Copy for a process that runs nothing else (the copy helper).
// It moves file content with raw system calls, which keep the process's one
// scheduler slot for their whole length: in the daemon that would hold up
// every other request for as long as a chunk takes, but in a process of its
// own it spares each chunk the hand-off of the slot to another thread and
// back that Go makes when a system call outlasts its monitor's tick. It also
// moves large files in copystreams.Count() streams while the walk goes on; the
// process needs that many scheduler slots beyond the walk's.
func CopyAlone(ctx context.Context, src, dst Side, opt Options) error {
	return copyTree(ctx, src, dst, opt, true)
}

func copyTree(ctx context.Context, src, dst Side, opt Options, alone bool) error {
	if opt.MaxDepth <= 0 {
		opt.MaxDepth = MaxDepth
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Only a process of its own moves content in the background: in the
	// daemon a copy is one file, whose stream would be waited for at once.
	n := 0
	if alone {
		n = copystreams.Count()
	}
	c := &copier{ctx: ctx, src: src.As, dst: dst.As, opt: opt, alone: alone, links: map[fileID]int{}, bg: copystreams.New(n, cancel)}
	defer c.close()
	return c.entry(src.Dir, dirent{name: src.Name, typ: unix.DT_UNKNOWN}, dst.Dir, dst.Name, true, 0)
}

type fileID struct{ dev, ino uint64 }

type copier struct {
	ctx      context.Context
	src, dst *proc.OwnerThread
	opt      Options
	alone    bool             // CopyAlone: content moves with raw system calls
	links    map[fileID]int   // destination fds of copied files with more than one name
	bg       *copystreams.Set // large files' content, moved while the walk goes on
	// noReflink is set once cloning failed in a way the next file would repeat.
	noReflink bool
	// xattrList and xattrValue are made once per copy, at their bounds: made
	// per file they would be zeroed for every file of the tree.
	xattrList, xattrValue []byte
}

func (c *copier) close() {
	c.bg.Settle()
	for _, fd := range c.links {
		unix.Close(fd)
	}
}

// entry copies name in srcDir to dstName in dstDir. merging says the
// destination directory existed before the copy, so the name may be taken:
// directories merge into directories, anything else goes through a temporary
// name. Below a directory the copy created, names are written directly: the
// whole new directory is still under its temporary name.
func (c *copier) entry(srcDir int, e dirent, dstDir int, dstName string, merging bool, depth int) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	src, err := c.openSource(srcDir, e)
	if err != nil {
		return err
	}
	defer unix.Close(src.fd)
	st := &src.st
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && depth > c.opt.MaxDepth {
		return fmt.Errorf("%s: directories nested deeper than %d: %w", e.name, c.opt.MaxDepth, syscall.ELOOP)
	}
	if !merging {
		return c.create(&src, dstDir, dstName, depth)
	}
	if isDir {
		var dst unix.Stat_t
		err := c.dst.Do(func() error { return unix.Fstatat(dstDir, dstName, &dst, unix.AT_SYMLINK_NOFOLLOW) })
		switch {
		case err == nil && dst.Mode&unix.S_IFMT == unix.S_IFDIR:
			return c.merge(&src, dstDir, dstName, depth)
		case err == nil:
			return fmt.Errorf("%s exists and is not a directory: %w", dstName, syscall.ENOTDIR)
		case !errors.Is(err, unix.ENOENT):
			return fmt.Errorf("stat %s: %w", dstName, err)
		}
	}
	tmp, err := tempName()
	if err != nil {
		return err
	}
	err = c.create(&src, dstDir, tmp, depth)
	// Nothing is renamed into place, or removed, while a background stream
	// still writes below it; a stream's failure is the copy's.
	if bgErr := c.bg.Settle(); bgErr != nil {
		err = bgErr
	}
	if err == nil {
		err = c.ctx.Err()
	}
	if err != nil {
		c.removeQuietly(dstDir, tmp)
		return err
	}
	flags := uint(unix.RENAME_NOREPLACE)
	if c.opt.Replace && !isDir {
		flags = 0
	}
	if err := c.dst.Do(func() error { return unix.Renameat2(dstDir, tmp, dstDir, dstName, flags) }); err != nil {
		c.removeQuietly(dstDir, tmp)
		return fmt.Errorf("create %s: %w", dstName, err)
	}
	return nil
}

// source is the entry a copy step reads, opened as the source identity.
type source struct {
	// fd is the entry opened for reading (a regular file or a directory), or
	// an O_PATH pin of whatever it is when readable is false.
	fd       int
	readable bool
	st       unix.Stat_t
}

// openSource opens name in dir. An entry the directory lists as a regular file
// or a directory is opened for reading at once, and what was opened is checked
// with fstat: the listing is only a hint, the container may have swapped in
// anything since. O_NONBLOCK keeps a FIFO swapped in from blocking the open and
// O_NOCTTY a terminal from becoming ours; a FIFO or device opened that way is
// closed unread. Everything else, and every entry the direct open did not
// give as a regular file or directory, is pinned with O_PATH, which opens
// nothing, and reopened later only if the pin shows it is safe to.
func (c *copier) openSource(dir int, e dirent) (source, error) {
	src := source{fd: -1}
	if e.typ == unix.DT_REG || e.typ == unix.DT_DIR {
		err := c.src.Do(func() error {
			var err error
			src.fd, err = unix.Openat(dir, e.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			return err
		})
		if err == nil {
			if err := unix.Fstat(src.fd, &src.st); err != nil {
				unix.Close(src.fd)
				return src, fmt.Errorf("stat %s: %w", e.name, err)
			}
			if t := src.st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFDIR {
				src.readable = true
				return src, nil
			}
			unix.Close(src.fd)
		}
		// ELOOP (a symlink now), ENXIO (a socket), EACCES (not readable:
		// the pin path reports it where it used to) or anything else: the
		// pin decides.
	}
	err := c.src.Do(func() error {
		var err error
		src.fd, err = unix.Openat(dir, e.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return src, fmt.Errorf("open %s: %w", e.name, err)
	}
	if err := unix.Fstat(src.fd, &src.st); err != nil {
		unix.Close(src.fd)
		return src, fmt.Errorf("stat %s: %w", e.name, err)
	}
	return src, nil
}

// merge copies the children of the source directory into the existing
// directory dstName, leaving the directory's own metadata alone.
func (c *copier) merge(src *source, dstDir int, dstName string, depth int) error {
	var d int
	err := c.dst.Do(func() error {
		var err error
		d, err = unix.Openat(dstDir, dstName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", dstName, err)
	}
	defer unix.Close(d)
	s, err := c.openSourceDir(src)
	if err != nil {
		return err
	}
	if s != src.fd {
		defer unix.Close(s)
	}
	return c.children(s, d, true, depth)
}

// create makes dstName in dstDir a copy of the source entry.
func (c *copier) create(src *source, dstDir int, dstName string, depth int) error {
	st := &src.st
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return c.regular(src, dstDir, dstName)
	case unix.S_IFDIR:
		return c.directory(src, dstDir, dstName, depth)
	case unix.S_IFLNK:
		return c.symlink(src.fd, st, dstDir, dstName)
	default:
		return c.node(st, dstDir, dstName)
	}
}

func (c *copier) regular(src *source, dstDir int, dstName string) error {
	st := &src.st
	id := fileID{st.Dev, st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[id]; ok {
			// Hard links are linked through the destination fd of the first
			// name: its path may have moved (renamed into place) since.
			err := c.dst.Do(func() error {
				return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(first), dstDir, dstName, unix.AT_SYMLINK_FOLLOW)
			})
			switch {
			case err == nil:
				return nil
			case errors.Is(err, unix.EPERM), errors.Is(err, unix.EMLINK), errors.Is(err, unix.EXDEV):
				// The writer may not link a file it does not own (it was
				// chowned to the container's root), or the file system
				// refuses: a copy of its own, as without hard links.
			default:
				return fmt.Errorf("link %s: %w", dstName, err)
			}
		}
	}
	in, err := c.openSourceFile(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", dstName, err)
	}
	if in != src.fd {
		defer unix.Close(in)
	}
	var out int
	err = c.dst.Do(func() error {
		var err error
		out, err = unix.Openat(dstDir, dstName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", dstName, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(out)
		}
	}()
	cloned := c.clone(in, out)
	c.xattrs(in, out)
	if !cloned && st.Nlink == 1 && st.Size >= copystreams.MinSize {
		if started, err := c.inBackground(in, out, st, dstName); err != nil {
			return err
		} else if started {
			keep = true // the stream closes it
			return nil
		}
	}
	if !cloned {
		if err := c.stream(in, out, st.Size); err != nil {
			return fmt.Errorf("copy %s: %w", dstName, err)
		}
	}
	if err := c.finish(out, st); err != nil {
		return fmt.Errorf("%s: %w", dstName, err)
	}
	if st.Nlink > 1 && len(c.links) < maxHardlinks {
		c.links[id] = out
		keep = true
	}
	if fileCopied != nil {
		fileCopied()
	}
	return nil
}

// inBackground hands the content of a file to a background stream, if one is
// free, with fds of its own; the stream then sets the owner, mode and times
// (after the last write, which would clear set-id bits) and closes both fds.
// A file with other names stays with the walk, which keeps its fd to link
// them.
func (c *copier) inBackground(in, out int, st *unix.Stat_t, dstName string) (bool, error) {
	if !c.bg.Take() {
		return false, nil
	}
	// in may be the walk's own fd of the entry, closed when it moves on.
	src, err := unix.FcntlInt(uintptr(in), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		c.bg.Release()
		return false, fmt.Errorf("copy %s: %w", dstName, err)
	}
	meta := *st
	if streamStarted != nil {
		streamStarted()
	}
	c.bg.Run(func() error {
		defer unix.Close(src)
		defer unix.Close(out)
		if err := c.stream(src, out, meta.Size); err != nil {
			return fmt.Errorf("copy %s: %w", dstName, err)
		}
		if err := c.finish(out, &meta); err != nil {
			return fmt.Errorf("%s: %w", dstName, err)
		}
		if fileCopied != nil {
			fileCopied()
		}
		return nil
	})
	return true, nil
}

// fileCopied, when set (by tests), is called after each regular file is
// copied.
var fileCopied func()

// streamStarted, when set (by tests), is called by the walk for each file
// handed to a background stream.
var streamStarted func()

// clone shares the content's extents where the file systems can (a reflink)
// and reports whether it did; the walk alone calls it.
func (c *copier) clone(in, out int) bool {
	if c.noReflink {
		return false
	}
	err := unix.IoctlFileClone(out, in)
	if err == nil {
		return true
	}
	// The file systems of the copy cannot share extents (ext4, tmpfs, two
	// file systems): stop asking for each file.
	c.noReflink = errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL)
	return false
}

// stream moves the content where clone could not: copy_file_range in chunks
// (in-kernel, and server-side on network file systems), else read and write.
// A file is copied up to the size it had when opened: a file that grows
// meanwhile (a container appending to it as fast as it is read) cannot make a
// copy endless, and a copy that has moved that many bytes needs no further
// call to learn it reached the end. Files claiming no size (those of /proc and
// the like, whose content is made when read) are copied to their end. A
// background stream calls it too, so it changes nothing of the copier's.
func (c *copier) stream(in, out int, size int64) error {
	left := size
	if left <= 0 {
		left = math.MaxInt64
	}
	for left > 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		n, err := c.copyFileRange(in, out, int(min(left, dataChunk)))
		switch {
		case err == nil && n == 0:
			return nil
		case err == nil:
			left -= int64(n)
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return c.readWrite(in, out, left)
		default:
			return err
		}
	}
	return nil
}

// copyFileRange moves up to n bytes from in to out at their offsets.
func (c *copier) copyFileRange(in, out, n int) (int, error) {
	if !c.alone {
		return unix.CopyFileRange(in, nil, out, nil, n, 0)
	}
	r, _, e := unix.RawSyscall6(unix.SYS_COPY_FILE_RANGE, uintptr(in), 0, uintptr(out), 0, uintptr(n), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (c *copier) readWrite(in, out int, left int64) error {
	buf := make([]byte, min(left, 1<<20))
	for left > 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Read(in, buf[:min(left, int64(len(buf)))])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		left -= int64(n)
		for b := buf[:n]; len(b) > 0; {
			w, err := unix.Write(out, b)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			b = b[w:]
		}
	}
	return nil
}

// openSourceFile gives a readable fd of the regular file src: its own fd, or
// one reopened through the pin as the source identity (the pin proved it is a
// regular file, so this open cannot block on a FIFO the container swapped in).
func (c *copier) openSourceFile(src *source) (int, error) {
	if src.readable {
		return src.fd, nil
	}
	var in int
	err := c.src.Do(func() error {
		var err error
		in, err = unix.Open("/proc/self/fd/"+strconv.Itoa(src.fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		return err
	})
	return in, err
}

func (c *copier) directory(src *source, dstDir int, dstName string, depth int) error {
	st := &src.st
	var d int
	err := c.dst.Do(func() error {
		if err := unix.Mkdirat(dstDir, dstName, 0o700); err != nil {
			return err
		}
		var err error
		d, err = unix.Openat(dstDir, dstName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("create directory %s: %w", dstName, err)
	}
	defer unix.Close(d)
	if err := sameMount(dstDir, d, dstName); err != nil {
		return err
	}
	s, err := c.openSourceDir(src)
	if err != nil {
		return err
	}
	if s != src.fd {
		defer unix.Close(s)
	}
	if err := c.children(s, d, false, depth); err != nil {
		return err
	}
	c.xattrs(s, d)
	if err := c.finish(d, st); err != nil {
		return fmt.Errorf("%s: %w", dstName, err)
	}
	return nil
}

// openSourceDir gives an fd to read the entries of the directory src: its own
// fd, or one opened through the pin as the source identity.
func (c *copier) openSourceDir(src *source) (int, error) {
	if src.readable {
		return src.fd, nil
	}
	var s int
	err := c.src.Do(func() error {
		var err error
		s, err = unix.Openat(src.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open directory: %w", err)
	}
	return s, nil
}

// children copies every entry of the open source directory s into d.
func (c *copier) children(s, d int, merging bool, depth int) error {
	r := getdents.NewReader(s, make([]byte, 8192))
	for {
		e, ok, err := r.Next()
		if err != nil {
			return fmt.Errorf("read directory: %w", err)
		}
		if !ok {
			return nil
		}
		name := string(e.Name)
		if err := c.entry(s, dirent{name: name, typ: e.Type}, d, name, merging, depth+1); err != nil {
			return err
		}
	}
}

func (c *copier) symlink(pin int, st *unix.Stat_t, dstDir int, dstName string) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(pin, "", buf)
	if err != nil {
		return fmt.Errorf("read link %s: %w", dstName, err)
	}
	if n >= len(buf) {
		return fmt.Errorf("read link %s: %w", dstName, syscall.ENAMETOOLONG)
	}
	err = c.dst.Do(func() error { return unix.Symlinkat(string(buf[:n]), dstDir, dstName) })
	if err != nil {
		return fmt.Errorf("create link %s: %w", dstName, err)
	}
	if uid, gid, ok := c.owner(st); ok {
		// Pinned as the destination identity, changed through the pin: the
		// name may have been replaced since it was made.
		var l int
		err := c.dst.Do(func() error {
			var err error
			l, err = unix.Openat(dstDir, dstName, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
		if err != nil {
			return fmt.Errorf("open link %s: %w", dstName, err)
		}
		err = sameMount(dstDir, l, dstName)
		if err == nil {
			err = unix.Fchownat(l, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(l)
		if err != nil {
			return fmt.Errorf("chown %s: %w", dstName, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	_ = c.dst.Do(func() error { return unix.UtimesNanoAt(dstDir, dstName, ts, unix.AT_SYMLINK_NOFOLLOW) })
	return nil
}

// node recreates a FIFO, socket or device node (devices need CAP_MKNOD on the
// destination side, as with upstream).
func (c *copier) node(st *unix.Stat_t, dstDir int, dstName string) error {
	err := c.dst.Do(func() error {
		return unix.Mknodat(dstDir, dstName, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	})
	if err != nil {
		return fmt.Errorf("create node %s: %w", dstName, err)
	}
	var fd int
	err = c.dst.Do(func() error {
		var err error
		fd, err = unix.Openat(dstDir, dstName, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open node %s: %w", dstName, err)
	}
	defer unix.Close(fd)
	if err := sameMount(dstDir, fd, dstName); err != nil {
		return err
	}
	if uid, gid, ok := c.owner(st); ok {
		if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("chown %s: %w", dstName, err)
		}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), st.Mode&0o7777, 0); err != nil {
		return fmt.Errorf("chmod %s: %w", dstName, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
	return nil
}

// sameMount checks that fd, just opened by name in dir, is on dir's mount.
// What the copy made by name is changed afterwards through an fd, with the
// daemon's rights: a mount the other side put on the name meanwhile would
// lead that change to a file the copy never made.
func sameMount(dir, fd int, name string) error {
	var a, b unix.Statx_t
	if err := unix.Statx(dir, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &a); err != nil {
		return fmt.Errorf("statx: %w", err)
	}
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &b); err != nil {
		return fmt.Errorf("statx %s: %w", name, err)
	}
	if a.Mnt_id != b.Mnt_id {
		return fmt.Errorf("%s was replaced by a mount during the copy: %w", name, syscall.EBUSY)
	}
	return nil
}

// owner is the uid and gid to give a copy of st, if any.
func (c *copier) owner(st *unix.Stat_t) (uint32, uint32, bool) {
	switch {
	case !c.opt.Own.Chown:
		return 0, 0, false
	case c.opt.Own.Override:
		return c.opt.Own.UID, c.opt.Own.GID, true
	}
	return st.Uid, st.Gid, true
}

// finish sets owner, mode and timestamps of a created file or directory
// through its fd, owner first: chown clears the set-id bits.
func (c *copier) finish(fd int, st *unix.Stat_t) error {
	if uid, gid, ok := c.owner(st); ok {
		if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// Through the fd of what the copy itself created: no path, nothing the
	// other side can swap, so no need for the writer's identity (which may
	// no longer own it after the chown).
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := futimens(fd, &[2]unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// futimens sets the times of the open file fd: utimensat with a NULL path,
// which x/sys's UtimesNanoAt cannot pass, so the times are set without a
// path walk through /proc/self/fd. The fd must not be O_PATH.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// xattrs copies the user.* extended attributes, best effort: the trusted and
// security namespaces carry privileges that must not cross between host and
// container, and a file system without xattrs is no reason to fail a copy.
func (c *copier) xattrs(in, out int) {
	if c.xattrList == nil {
		c.xattrList = make([]byte, maxXattrList)
	}
	list := c.xattrList
	n, err := unix.Flistxattr(in, list)
	if err != nil || n <= 0 {
		return
	}
	if c.xattrValue == nil {
		c.xattrValue = make([]byte, maxXattrSize)
	}
	val := c.xattrValue
	start := 0
	for i := range n {
		if list[i] != 0 {
			continue
		}
		name := string(list[start:i])
		start = i + 1
		if len(name) <= len("user.") || name[:len("user.")] != "user." {
			continue
		}
		vn, err := unix.Fgetxattr(in, name, val)
		if err != nil {
			continue
		}
		_ = c.dst.Do(func() error { return unix.Fsetxattr(out, name, val[:vn], 0) })
	}
}

// removeQuietly removes what a failed copy left under a temporary name.
func (c *copier) removeQuietly(dir int, name string) {
	_ = c.dst.Do(func() error { return removeAll(dir, name, 0) })
}

// removeAll removes name in dir and, for a directory, what is below it,
// without following symlinks.
func removeAll(dir int, name string, depth int) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) || depth > MaxDepth+1 {
		return err
	}
	d, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// Removing entries while reading the directory may skip some: read it
	// again from the start until nothing is left.
	buf := make([]byte, 8192)
	var names []string
	for range 1 << 16 {
		if _, err := unix.Seek(d, 0, 0); err != nil {
			break
		}
		names = names[:0]
		for {
			n, err := unix.ReadDirent(d, buf)
			if err != nil || n == 0 {
				break
			}
			_, _, names = unix.ParseDirent(buf[:n], -1, names)
		}
		if len(names) == 0 {
			break
		}
		for _, child := range names {
			_ = removeAll(d, child, depth+1)
		}
	}
	unix.Close(d)
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

func tempName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("temporary name: %w", err)
	}
	return tempPrefix + hex.EncodeToString(b[:]), nil
}
