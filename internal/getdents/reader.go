package getdents

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Entry is one directory entry.
type Entry struct {
	// Name is in the reader's buffer: it holds until the next call of Next.
	Name []byte
	// Type is the d_type the file system stored with the entry, DT_UNKNOWN
	// where it stores none. It is a hint read before the entry is opened: the
	// entry may be replaced in between.
	Type uint8
}

// ErrMalformed is a batch whose records do not add up. The kernel never
// returns one; a caller must not guess at what it held.
var ErrMalformed = fmt.Errorf("malformed entry: %w", unix.EIO)

// linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), then
// the name, NUL-terminated within d_reclen.
const (
	offReclen = 16
	offType   = 18
	offName   = 19
)

// Reader yields the entries of one open directory, "." and ".." left out.
type Reader struct {
	fd  int
	buf []byte
	// rest holds the records of the last batch not yet yielded.
	rest []byte
	// batch is how many bytes the last read returned.
	batch int
	// read is getdents64; tests hand out batches of their own.
	read func(fd int, buf []byte) (int, error)
}

// NewReader reads the directory fd from its current position into buf. buf
// must hold the directory's longest record: a read that cannot fit the next
// one fails with EINVAL.
func NewReader(fd int, buf []byte) Reader {
	return Reader{fd: fd, buf: buf, read: unix.Getdents}
}

// Next gives the next entry; false with a nil error at the end of the
// directory. Only a read of nothing is the end: a read may return nothing but
// the dots or deleted entries (tmpfs returns just the dots while other
// directories of it change), and taking that for the end had a copy skip the
// rest of a directory and report success. A malformed batch stays the error
// of every later call.
func (r *Reader) Next() (Entry, bool, error) {
	for {
		for len(r.rest) > 0 {
			e, ok, err := r.record()
			if err != nil {
				return Entry{}, false, err
			}
			if ok {
				return e, true, nil
			}
		}
		n, err := r.read(r.fd, r.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Entry{}, false, err
		}
		if n == 0 {
			return Entry{}, false, nil
		}
		r.rest, r.batch = r.buf[:n], n
	}
}

// BatchBytes is the size of the batch the last entry came from: a bound on
// the bytes of the names it holds, for a caller that sizes its storage once.
func (r *Reader) BatchBytes() int {
	return r.batch
}

// record takes the first record off r.rest, unless it is malformed: its
// entry, or false for one that is left out (the dots, and entries with inode
// 0, which some file systems return for deleted ones).
func (r *Reader) record() (Entry, bool, error) {
	b := r.rest
	if len(b) < offName {
		return Entry{}, false, ErrMalformed
	}
	reclen := int(binary.NativeEndian.Uint16(b[offReclen:]))
	if reclen < offName || reclen > len(b) {
		return Entry{}, false, ErrMalformed
	}
	rec := b[:reclen]
	name := rec[offName:]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	// The kernel refuses to return an empty name; a record with one names
	// nothing that could be opened or listed.
	if len(name) == 0 {
		return Entry{}, false, ErrMalformed
	}
	r.rest = b[reclen:]
	if binary.NativeEndian.Uint64(rec) == 0 || string(name) == "." || string(name) == ".." {
		return Entry{}, false, nil
	}
	return Entry{Name: name, Type: rec[offType]}, true, nil
}
