package containerfs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// dirent is a directory entry as getdents64 returns it: the name and the type
// the file system stored with it (DT_UNKNOWN where it stores none). The type
// is a hint, read before the entry is opened: the entry may be replaced in
// between, so whatever is opened on its strength is checked with fstat.
type dirent struct {
	name string
	typ  uint8
}

// linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
const (
	direntReclen = 16
	direntType   = 18
	direntName   = 19
)

// readDirents reads the next batch of entries of the open directory d into
// ents, without "." and "..". An empty batch is the end of the directory.
func readDirents(d int, buf []byte, ents []dirent) ([]dirent, error) {
	return nextDirents(func(b []byte) (int, error) { return unix.ReadDirent(d, b) }, buf, ents)
}

// nextDirents reads with read until a read returns entries other than "."
// and "..", or nothing at all: only a read of nothing is the end of the
// directory. A read may return only the dots (tmpfs does, while other
// directories of it change), and taking that for the end had a copy skip the
// rest of the directory and report success.
func nextDirents(read func([]byte) (int, error), buf []byte, ents []dirent) ([]dirent, error) {
	for {
		n, err := read(buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ents[:0], fmt.Errorf("read directory: %w", err)
		}
		if ents, err = parseDirents(buf[:n], ents[:0]); err != nil || len(ents) > 0 || n == 0 {
			return ents, err
		}
	}
}

// parseDirents appends the entries of one getdents64 batch to ents.
func parseDirents(buf []byte, ents []dirent) ([]dirent, error) {
	for b := buf; len(b) >= direntName; {
		reclen := int(binary.NativeEndian.Uint16(b[direntReclen:]))
		if reclen < direntName || reclen > len(b) {
			return ents, fmt.Errorf("read directory: malformed entry: %w", unix.EIO)
		}
		rec := b[:reclen]
		b = b[reclen:]
		if binary.NativeEndian.Uint64(rec) == 0 {
			continue // a deleted entry some file systems still return
		}
		name := rec[direntName:]
		for i, ch := range name {
			if ch == 0 {
				name = name[:i]
				break
			}
		}
		if s := string(name); s != "." && s != ".." {
			ents = append(ents, dirent{name: s, typ: rec[direntType]})
		}
	}
	return ents, nil
}
