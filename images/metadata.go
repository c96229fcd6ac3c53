package images

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/envfile"
)

// Metadata is what an image says about the OS inside it.
type Metadata struct {
	Hostname  string
	MachineID string // 32 lowercase hex digits, or "" when absent or invalid
	// MachineInfo and OSRelease are KEY=VALUE lines in file order.
	MachineInfo []string
	OSRelease   []string
}

// MetadataParts picks the identity files a reading opens: a getter that
// answers one field need not open the other three files.
type MetadataParts uint8

const (
	PartHostname MetadataParts = 1 << iota
	PartMachineID
	PartMachineInfo
	PartOSRelease
	AllMetadata = PartHostname | PartMachineID | PartMachineInfo | PartOSRelease
)

// maxMetadataFile bounds what is read of each file: they are the image's, and
// the image may be anybody's.
const maxMetadataFile = 64 << 10

// maxCachedMetadata bounds the cache of disk images' metadata.
const maxCachedMetadata = 256

// Metadata reads the OS identity of the image. Trees are read afresh each time,
// resolving every path inside the tree: reading the handful of small files costs
// what checking them for changes would. Disk images (raw, block) are attached
// read-only through a loop device and their root file system mounted read-only
// and detached from every mount namespace; what was read is cached per image
// until the image file changes (device, inode, size, modification and change
// times); reading one takes the image's lock shared, so an image a writable
// container runs answers EBUSY unless its metadata was read before. Files that
// are missing or unreadable leave their fields empty; an error means the image
// itself could not be read. Of a tree only the files of parts are read, the
// other fields left empty; a disk image is read whole, since what is read of it
// is cached.
func (p *Pool) Metadata(ctx context.Context, img Image, parts MetadataParts) (Metadata, error) {
	if err := ctx.Err(); err != nil {
		return Metadata{}, err
	}
	switch img.Type {
	case TypeDirectory, TypeSubvolume:
		fd, err := unix.Open(img.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return Metadata{}, fmt.Errorf("image %q: %w", img.Name, err)
		}
		defer unix.Close(fd)
		return readMetadataAt(fd, parts), nil
	case TypeRaw, TypeBlock:
		key, err := statKey(img.Path)
		if err != nil {
			return Metadata{}, fmt.Errorf("image %q: %w", img.Name, err)
		}
		if md, ok := p.meta.get(img.Path, key); ok {
			return md, nil
		}
		// Shared, as nspawn takes it for a read-only container: a file system
		// a writable container has mounted is not mounted a second time.
		lock, err := p.lockImage(img.Path, false)
		if err != nil {
			return Metadata{}, fmt.Errorf("image %q: %w", img.Name, err)
		}
		defer lock.release()
		md, err := readDisk(img.Path)
		if err != nil {
			return Metadata{}, fmt.Errorf("image %q: %w", img.Name, err)
		}
		p.meta.put(img.Path, key, md)
		return md.clone(), nil
	}
	return Metadata{}, fmt.Errorf("image %q: %w", img.Name, unix.EOPNOTSUPP)
}

func (m Metadata) clone() Metadata {
	m.MachineInfo = append([]string(nil), m.MachineInfo...)
	m.OSRelease = append([]string(nil), m.OSRelease...)
	return m
}

// readDisk is readDiskMetadata; tests count its calls.
var readDisk = readDiskMetadata

// metaKey is what changes when a disk image does.
type metaKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func statKey(path string) (metaKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return metaKey{}, err
	}
	return metaKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, nil
}

type metadataCache struct {
	mu      sync.Mutex
	entries map[string]cachedMetadata
}

type cachedMetadata struct {
	key metaKey
	md  Metadata
}

func (c *metadataCache) get(path string, key metaKey) (Metadata, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.key != key {
		return Metadata{}, false
	}
	return e.md.clone(), true
}

func (c *metadataCache) put(path string, key metaKey, md Metadata) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedMetadata{}
	}
	if _, ok := c.entries[path]; !ok && len(c.entries) >= maxCachedMetadata {
		for victim := range c.entries { // any one: map order is random
			delete(c.entries, victim)
			break
		}
	}
	c.entries[path] = cachedMetadata{key: key, md: md.clone()}
}

func (c *metadataCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// readTreeFile is readInRoot; tests see which files a reading opens.
var readTreeFile = readInRoot

// readMetadataAt reads the identity files of parts of the tree rootfd.
func readMetadataAt(rootfd int, parts MetadataParts) Metadata {
	var md Metadata
	if parts&PartHostname != 0 {
		if b, err := readTreeFile(rootfd, "etc/hostname"); err == nil {
			md.Hostname = parseHostname(b)
		}
	}
	if parts&PartMachineID != 0 {
		if b, err := readTreeFile(rootfd, "etc/machine-id"); err == nil {
			md.MachineID = parseMachineID(b)
		}
	}
	if parts&PartMachineInfo != 0 {
		if b, err := readTreeFile(rootfd, "etc/machine-info"); err == nil {
			md.MachineInfo = parseEnv(b)
		}
	}
	if parts&PartOSRelease == 0 {
		return md
	}
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := readTreeFile(rootfd, name)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err == nil {
			md.OSRelease = parseEnv(b)
		}
		break
	}
	return md
}

// readInRoot reads the regular file path as if rootfd were "/": absolute
// symlinks and ".." stay inside the tree, magic links are refused. The file is
// first opened as a mere reference and only opened for reading once known to be
// a regular file: opening a FIFO would block, a device could react.
func readInRoot(rootfd int, path string) ([]byte, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	var err error
	for range 8 {
		if fd, err = unix.Openat2(rootfd, path, &how); err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file: %w", path, unix.EINVAL)
	}
	rfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := unix.Read(rfd, chunk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		if buf = append(buf, chunk[:n]...); len(buf) > maxMetadataFile {
			return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxMetadataFile, unix.EFBIG)
		}
	}
}

func parseEnv(b []byte) []string {
	as, err := envfile.ParseLenient(b)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.Key+"="+a.Value)
	}
	return out
}

// maxHostname is HOST_NAME_MAX.
const maxHostname = 64

// parseHostname returns the first line that is neither empty nor a comment,
// cleaned up as systemd does (only letters, digits, '-' and '.', no leading,
// doubled or trailing separators); "" when nothing valid is left.
func parseHostname(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var out []byte
		dot, hyphen := true, true
		for i := 0; i < len(line) && len(out) < maxHostname; i++ {
			c := line[i]
			switch {
			case c == '.':
				if dot || hyphen {
					continue
				}
				out, dot, hyphen = append(out, c), true, false
			case c == '-':
				if dot {
					continue
				}
				out, dot, hyphen = append(out, c), false, true
			case isAlpha(c) || isDigit(c):
				out, dot, hyphen = append(out, c), false, false
			}
		}
		for len(out) > 0 && (out[len(out)-1] == '-' || out[len(out)-1] == '.') {
			out = out[:len(out)-1]
		}
		return string(out)
	}
	return ""
}

// parseMachineID accepts exactly 32 hex digits and an optional newline; an
// all-zero ID counts as none.
func parseMachineID(b []byte) string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if len(s) != 32 {
		return ""
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return ""
	}
	for _, c := range raw {
		if c != 0 {
			return strings.ToLower(s)
		}
	}
	return ""
}
