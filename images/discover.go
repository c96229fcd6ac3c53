package images

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// systemSearchPath is where machine images live, highest priority first: the
// first directory holding a name wins. /etc and /run are meant for symlinks.
var systemSearchPath = []string{
	"/etc/machines",
	"/run/machines",
	"/var/lib/machines",
	"/var/lib/container", // legacy
	"/usr/local/lib/machines",
	"/usr/lib/machines",
}

// unknown is the value of every size and limit nobody can tell.
const unknown = math.MaxUint64

// candidateFiles are the entries that may hold the image name, in the order a
// lookup tries them within one directory.
func candidateFiles(name string) [4]string {
	return [4]string{name, name + ".raw", name + ".v", name + ".raw.v"}
}

// nameOfEntry derives the image name an entry of a search directory stands for,
// from its file name and type, or "" when it is no image.
func nameOfEntry(file string, mode uint32) string {
	var name string
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		n, ok := strings.CutSuffix(file, ".raw")
		if !ok {
			return ""
		}
		name = n
	case unix.S_IFDIR:
		name = file
		if n, ok := strings.CutSuffix(file, ".v"); ok {
			name = n
			if m, ok := strings.CutSuffix(n, ".raw"); ok {
				name = m
			}
		}
	case unix.S_IFBLK:
		name = file
	default:
		return ""
	}
	if ValidName(name) != nil {
		return ""
	}
	return name
}

// List returns every image, each name once (the first directory of the search
// path that holds it wins), sorted by name. It reads the file system each time:
// images that appear or go are seen by the next call. An entry that vanishes or
// cannot be resolved (a dangling link, a symlink loop) while listing is skipped.
func (p *Pool) List() ([]Image, error) {
	var out []Image
	// claimed holds every name a directory has claimed: listed, or unusable
	// (Get fails on it too, rather than look further).
	var claimed map[string]bool
	mounts := mountFlags{}
	for _, dir := range p.searchPath() {
		sd, err := readSearchDir(dir)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return nil, fmt.Errorf("reading image directory %s: %w", dir, err)
		}
		if claimed == nil {
			claimed = make(map[string]bool, len(sd.files))
			out = make([]Image, 0, len(sd.files)+1)
		}
		// claims are the names this directory lists, each with the entry
		// that named it first.
		type claim struct {
			name  string
			entry int
		}
		claims := make([]claim, 0, len(sd.files))
		for i, file := range sd.files {
			stx := sd.stat(i)
			if stx == nil {
				continue
			}
			name := nameOfEntry(file, uint32(stx.Mode))
			if name == "" {
				continue
			}
			if _, seen := claimed[name]; seen {
				continue
			}
			claimed[name] = true // keeps later directories from claiming it
			claims = append(claims, claim{name, i})
		}
		for _, c := range claims {
			name := c.name
			img, err := sd.lookup(name, c.entry, mounts)
			switch {
			case err == nil:
				out = append(out, img)
			case errors.Is(err, ErrNoSuchImage):
				delete(claimed, name) // nothing usable here: a later directory may have it
			default:
				claimed[name] = false
			}
		}
		sd.close()
	}
	byName := func(a, b Image) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(out, byName) {
		slices.SortFunc(out, byName)
	}
	if p.cfg.Host {
		if _, ok := claimed[HostName]; !ok {
			host := hostImage()
			at, _ := slices.BinarySearchFunc(out, host, byName)
			out = slices.Insert(out, at, host)
		}
	}
	return out, nil
}

// Get returns the image called name: the first hit in the search path, else
// .host when configured. ErrNoSuchImage when there is none (invalid names
// included: no image can carry one).
func (p *Pool) Get(name string) (Image, error) {
	if ValidName(name) != nil {
		return Image{}, fmt.Errorf("%w: %q", ErrNoSuchImage, name)
	}
	for _, dir := range p.searchPath() {
		img, err := lookupIn(dir, name, nil)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, ErrNoSuchImage) {
			return Image{}, err
		}
	}
	if p.cfg.Host && name == HostName {
		return hostImage(), nil
	}
	return Image{}, fmt.Errorf("%w: %q", ErrNoSuchImage, name)
}

// lookupIn finds the image name in the search directory dir, trying its possible
// file names in order. present, when not nil, lists dir's entries so that absent
// names cost no system call. ErrNoSuchImage when dir holds none; a name that
// exists but cannot be resolved (a symlink loop, no permission) is that error.
func lookupIn(dir, name string, present map[string]bool) (Image, error) {
	for _, file := range candidateFiles(name) {
		if present != nil && !present[file] {
			continue
		}
		path := filepath.Join(dir, file)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return Image{}, fmt.Errorf("image %q: %s: %w", name, path, err)
		}
		mode := st.Mode & unix.S_IFMT
		switch {
		case strings.HasSuffix(file, ".v"):
			if mode != unix.S_IFDIR {
				continue
			}
			suffix := strings.TrimSuffix(strings.TrimPrefix(file, name), ".v")
			picked, pst, err := pickVersion(path, name, suffix)
			if err != nil {
				continue
			}
			path, st = picked, pst
		case strings.HasSuffix(file, ".raw") && file != name:
			if mode != unix.S_IFREG {
				continue
			}
		default:
			if mode != unix.S_IFDIR && mode != unix.S_IFBLK {
				continue
			}
		}
		img, err := makeImage(name, path, &st)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotAnImage) {
				continue
			}
			return Image{}, err
		}
		return img, nil
	}
	return Image{}, fmt.Errorf("%w: %q", ErrNoSuchImage, name)
}

var errNotAnImage = errors.New("not an image")

func hostImage() Image {
	img, err := makeImage(HostName, "/", nil)
	if err != nil {
		return Image{Name: HostName, Path: "/", Type: TypeDirectory, ReadOnly: true,
			Usage: unknown, UsageExclusive: unknown, Limit: unknown, LimitExclusive: unknown}
	}
	return img
}

// makeImage describes the inode at path (stat st, nil to stat it now) as the
// image name.
func makeImage(name, path string, st *unix.Stat_t) (Image, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	st = &fst // what the fd pins, in case path changed since the caller's stat

	img := Image{
		Name: name, Path: filepath.Clean(path),
		Usage: unknown, UsageExclusive: unknown, Limit: unknown, LimitExclusive: unknown,
	}
	readOnly := pathUnder(img.Path, "/usr") ||
		unix.Faccessat(fd, "", unix.W_OK, unix.AT_EACCESS|unix.AT_EMPTY_PATH) == unix.EROFS

	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		dfd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return Image{}, fmt.Errorf("image %q: %w", name, err)
		}
		defer unix.Close(dfd)
		if st.Ino == btrfsFirstFreeObjectID && onBtrfs(dfd) {
			if info, err := subvolInfo(dfd); err == nil {
				img.Type = TypeSubvolume
				img.ReadOnly = readOnly || info.Flags&btrfsRootSubvolRdonly != 0
				img.CrTime = timespecMicro(info.Otime)
				img.MTime = timespecMicro(info.Ctime)
				if q, ok := subvolQuota(dfd, info.TreeID); ok {
					img.Usage, img.UsageExclusive = q.Referenced, q.Exclusive
					img.Limit, img.LimitExclusive = q.ReferencedMax, q.ExclusiveMax
				}
				break
			}
		}
		img.Type = TypeDirectory
		img.CrTime = birthTime(fd)
		attrs, _ := fileAttrs(dfd)
		img.ReadOnly = readOnly || attrs&fsImmutableFL != 0
	case unix.S_IFREG:
		if !strings.HasSuffix(path, ".raw") {
			return Image{}, errNotAnImage
		}
		img.Type = TypeRaw
		img.ReadOnly = readOnly || st.Mode&0o222 == 0
		img.CrTime = birthTime(fd)
		img.MTime = uint64(st.Mtim.Sec)*1e6 + uint64(st.Mtim.Nsec)/1e3
		img.Usage = uint64(st.Blocks) * 512
		img.UsageExclusive = img.Usage
		img.Limit = uint64(st.Size)
		img.LimitExclusive = img.Limit
	case unix.S_IFBLK:
		img.Type = TypeBlock
		size := uint64(unknown)
		if bfd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0); err == nil {
			if !readOnly {
				if ro, err := unix.IoctlGetInt(bfd, unix.BLKROGET); err == nil && ro != 0 {
					readOnly = true
				}
			}
			if s, err := blockDeviceSize(bfd); err == nil {
				size = s
			}
			unix.Close(bfd)
		}
		img.ReadOnly = readOnly || st.Mode&0o222 == 0
		if size != 0 && size != unknown {
			img.Usage, img.UsageExclusive, img.Limit, img.LimitExclusive = size, size, size, size
		}
	default:
		return Image{}, errNotAnImage
	}
	if img.Hidden() {
		// Hidden images are read-only: to change one, clone it first.
		img.ReadOnly = true
	}
	return img, nil
}

func blockDeviceSize(fd int) (uint64, error) {
	var size uint64
	err := ioctlPtr(fd, unix.BLKGETSIZE64, unsafePointer(&size))
	return size, err
}

func timespecMicro(ts btrfsTimespec) uint64 {
	return ts.Sec*1e6 + uint64(ts.Nsec)/1e3
}

// birthTime is the inode's creation time in µs, 0 when the file system does not
// record it.
func birthTime(fd int) uint64 {
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &stx) != nil || stx.Mask&unix.STATX_BTIME == 0 {
		return 0
	}
	return uint64(stx.Btime.Sec)*1e6 + uint64(stx.Btime.Nsec)/1e3
}

// subvolQuota reads the quota of the subvolume's subtree qgroup; false while
// quota is off, unreadable or being rescanned.
func subvolQuota(fd int, subvol uint64) (quotaInfo, bool) {
	if ongoing, err := quotaRescanOngoing(fd); err != nil || ongoing {
		return quotaInfo{}, false
	}
	id, err := subtreeQgroup(fd, subvol)
	if err != nil {
		return quotaInfo{}, false
	}
	q, err := qgroupQuota(fd, id)
	return q, err == nil
}
