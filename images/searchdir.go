package images

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// searchDir is one search directory as List reads it: its entries, each
// statted once relative to the directory, so that the common images (plain
// directories, raw files) are described without opening them or resolving
// their path again. Whatever this cannot describe exactly as lookupIn would
// (versioned directories, block devices, possible btrfs subvolumes, entries
// whose stat failed) is left to lookupIn.
type searchDir struct {
	path string
	// prefix is the cleaned path and a slash (or "/" for the root): an entry's
	// path is prefix+file, as filepath.Join would make it.
	prefix string
	fd     int
	// files are the entries sorted by name (find searches them); stats[i] is
	// files[i]'s stat, with a zero Mask when the stat failed.
	files   []string
	stats   []entryStat
	present map[string]bool // built for lookupIn on first need
	// paths holds prefix+files[i] for every i, one after the other from
	// pathAt[i]: built on first need, in one allocation for all entries.
	paths  string
	pathAt []int
}

// entryStatMask is what List needs of an entry: enough to name it and to
// describe a directory or raw image.
const entryStatMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_INO | unix.STATX_MTIME |
	unix.STATX_SIZE | unix.STATX_BLOCKS | unix.STATX_BTIME | unix.STATX_MNT_ID

// readSearchDir reads and stats the entries of dir, following symbolic links
// as a lookup does. The caller closes it.
func readSearchDir(dir string) (*searchDir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	files, err := readNames(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// In name order, List's result mostly comes out sorted already: sorting
	// strings is cheaper than sorting images.
	slices.Sort(files)
	prefix := filepath.Clean(dir)
	if prefix != "/" {
		prefix += "/"
	}
	d := &searchDir{path: dir, prefix: prefix, fd: fd, files: files, stats: getStats(len(files))}
	var stx unix.Statx_t
	for i, file := range files {
		if statxAt(fd, file, &stx) == nil {
			d.stats[i] = entryStat{
				Mask: stx.Mask, Mode: stx.Mode, Ino: stx.Ino, Mnt_id: stx.Mnt_id,
				Attributes: stx.Attributes, Attributes_mask: stx.Attributes_mask,
				Size: stx.Size, Blocks: stx.Blocks, Btime: stx.Btime, Mtime: stx.Mtime,
			}
		}
	}
	return d, nil
}

// close closes the directory; d's stats go back to the pool, so d must not be
// used after.
func (d *searchDir) close() {
	unix.Close(d.fd)
	putStats(d.stats)
	d.stats = nil
}

// statsPool recycles the entries' stats, the largest buffer of a List that
// does not outlive it.
var statsPool sync.Pool // of *[]entryStat

func getStats(n int) []entryStat {
	if p, ok := statsPool.Get().(*[]entryStat); ok && cap(*p) >= n {
		s := (*p)[:n]
		clear(s)
		return s
	}
	return make([]entryStat, n)
}

func putStats(s []entryStat) {
	if cap(s) <= maxPooledStats {
		statsPool.Put(&s)
	}
}

// maxPooledStats bounds the stats kept between Lists: one huge directory
// must not keep its buffer.
const maxPooledStats = 16 << 10

// statxAt is unix.Statx of an entry name with entryStatMask, without the copy
// of the name to the heap unix.Statx makes for every call.
func statxAt(dirfd int, name string, stx *unix.Statx_t) error {
	var buf [256]byte
	if len(name) >= len(buf) || strings.IndexByte(name, 0) >= 0 {
		return unix.ENAMETOOLONG
	}
	copy(buf[:], name)
	buf[len(name)] = 0
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&buf[0])),
		unix.AT_STATX_SYNC_AS_STAT, entryStatMask, uintptr(unsafe.Pointer(stx)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// entryStat is the part of an entry's statx List uses, kept per entry (a
// whole statx is four times the size).
type entryStat struct {
	Mask            uint32
	Mode            uint16
	Ino, Mnt_id     uint64
	Attributes      uint64
	Attributes_mask uint64
	Size, Blocks    uint64
	Btime, Mtime    unix.StatxTimestamp
}

// stat is the stat of entry i, nil when its stat failed.
func (d *searchDir) stat(i int) *entryStat {
	if d.stats[i].Mask == 0 {
		return nil
	}
	return &d.stats[i]
}

// slow is lookupIn, for what the entries' stats cannot answer.
func (d *searchDir) slow(name string) (Image, error) {
	if d.present == nil {
		d.present = make(map[string]bool, len(d.files))
		for _, f := range d.files {
			d.present[f] = true
		}
	}
	return lookupIn(d.path, name, d.present)
}

// candidateSuffixes are candidateFiles' suffixes, in the same order.
var candidateSuffixes = [4]string{"", ".raw", ".v", ".raw.v"}

// pathOf is the path of entry i, as filepath.Join(d.path, d.files[i]) is.
func (d *searchDir) pathOf(i int) string {
	if d.pathAt == nil {
		n := 0
		for _, f := range d.files {
			n += len(d.prefix) + len(f)
		}
		var b strings.Builder
		b.Grow(n)
		d.pathAt = make([]int, len(d.files))
		for j, f := range d.files {
			d.pathAt[j] = b.Len()
			b.WriteString(d.prefix)
			b.WriteString(f)
		}
		d.paths = b.String()
	}
	at := d.pathAt[i]
	return d.paths[at : at+len(d.prefix)+len(d.files[i])]
}

// find returns the index of the entry called name+suffix.
func (d *searchDir) find(name, suffix string) (int, bool) {
	var buf [256 + 8]byte
	key := append(append(buf[:0], name...), suffix...)
	// A binary search of the sorted names: cheaper than building an index of
	// every entry on each List, and string(key) in a comparison is not copied.
	lo, hi := 0, len(d.files)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.files[m] < string(key) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(d.files) && d.files[lo] == string(key)
}

// lookup is lookupIn for a name of this directory, answered from the entries'
// stats where they suffice. entry is an entry that bears the name: when it is
// the name itself, as for every plain directory, the first candidate needs
// no search.
func (d *searchDir) lookup(name string, entry int, mounts mountFlags) (Image, error) {
	for _, suffix := range candidateSuffixes {
		i, ok := entry, suffix == "" && d.files[entry] == name
		if !ok {
			i, ok = d.find(name, suffix)
		}
		if !ok {
			continue
		}
		file, stx := d.files[i], d.stat(i)
		if stx == nil || strings.HasSuffix(file, ".v") {
			return d.slow(name)
		}
		mode := uint32(stx.Mode) & unix.S_IFMT
		switch {
		case suffix == ".raw":
			if mode != unix.S_IFREG {
				continue
			}
		case mode == unix.S_IFDIR:
		case mode == unix.S_IFBLK:
			return d.slow(name)
		default:
			continue
		}
		path := d.pathOf(i)
		m, ok := mounts.of(path, stx)
		if !ok || (mode == unix.S_IFDIR && stx.Ino == btrfsFirstFreeObjectID && m.btrfs) {
			return d.slow(name)
		}
		img, ok := d.describe(name, file, path, stx, m)
		if !ok {
			return d.slow(name)
		}
		return img, nil
	}
	return d.slow(name)
}

// describe builds the image of a plain directory or raw file from its stat,
// as makeImage would; false when it cannot tell.
func (d *searchDir) describe(name, file, path string, stx *entryStat, m mountInfo) (Image, bool) {
	img := Image{
		Name: name, Path: path,
		Usage: unknown, UsageExclusive: unknown, Limit: unknown, LimitExclusive: unknown,
	}
	readOnly := pathUnder(path, "/usr") || m.readOnly
	if stx.Mask&unix.STATX_BTIME != 0 {
		img.CrTime = uint64(stx.Btime.Sec)*1e6 + uint64(stx.Btime.Nsec)/1e3
	}
	if uint32(stx.Mode)&unix.S_IFMT == unix.S_IFDIR {
		img.Type = TypeDirectory
		immutable, ok := d.immutable(file, stx)
		if !ok {
			return Image{}, false
		}
		img.ReadOnly = readOnly || immutable
	} else {
		img.Type = TypeRaw
		img.ReadOnly = readOnly || stx.Mode&0o222 == 0
		img.MTime = uint64(stx.Mtime.Sec)*1e6 + uint64(stx.Mtime.Nsec)/1e3
		img.Usage = stx.Blocks * 512
		img.UsageExclusive = img.Usage
		img.Limit = stx.Size
		img.LimitExclusive = img.Limit
	}
	if img.Hidden() {
		img.ReadOnly = true
	}
	return img, true
}

// immutable reports the directory entry's immutable attribute: from its stat
// where the file system reports attributes there, else asked of the inode.
func (d *searchDir) immutable(file string, stx *entryStat) (bool, bool) {
	if stx.Attributes_mask&unix.STATX_ATTR_IMMUTABLE != 0 {
		return stx.Attributes&unix.STATX_ATTR_IMMUTABLE != 0, true
	}
	fd, err := unix.Openat(d.fd, file, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if unix.Fstat(fd, &fst) != nil || fst.Ino != stx.Ino {
		return false, false // replaced since the stat
	}
	attrs, _ := fileAttrs(fd)
	return attrs&fsImmutableFL != 0, true
}

// mountInfo is what List needs of the mount an image lives on.
type mountInfo struct {
	readOnly bool
	btrfs    bool
}

// mountFlags holds, for one List, the mounts met so far by mount ID: asked once
// per mount instead of once per image.
type mountFlags map[uint64]mountInfo

// of returns the mount the entry at path (stat stx) lives on; false when the
// kernel does not name mounts in stats or the mount cannot be asked.
func (mf mountFlags) of(path string, stx *entryStat) (mountInfo, bool) {
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return mountInfo{}, false
	}
	if m, ok := mf[stx.Mnt_id]; ok {
		return m, true
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return mountInfo{}, false
	}
	defer unix.Close(fd)
	// The entry may have been replaced since its stat: only what fd pins,
	// checked to be on the same mount, may speak for that mount.
	var pinned unix.Statx_t
	var sfs unix.Statfs_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &pinned) != nil ||
		pinned.Mask&unix.STATX_MNT_ID == 0 || pinned.Mnt_id != stx.Mnt_id ||
		unix.Fstatfs(fd, &sfs) != nil {
		return mountInfo{}, false
	}
	m := mountInfo{
		readOnly: sfs.Flags&unix.ST_RDONLY != 0,
		btrfs:    uint32(sfs.Type) == unix.BTRFS_SUPER_MAGIC,
	}
	mf[stx.Mnt_id] = m
	return m, true
}
