package images

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bufpool"
)

// direntBufSize is how much of a directory one getdents64 call reads.
const direntBufSize = 32 << 10

// direntBufs recycles the buffers getdents64 reads into: every List reads
// every search directory.
var direntBufs = bufpool.New(direntBufSize, direntBufSize)

// readNames returns the names of the entries of the open directory fd, "."
// and ".." left out. They are substrings of one string: a List of a large
// directory makes one allocation for its names, not one per entry.
func readNames(fd int) ([]string, error) {
	bp := direntBufs.Get()
	defer direntBufs.Put(bp, *bp)
	buf := (*bp)[:direntBufSize]
	var all []byte
	var ends []int
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		if all == nil {
			// A record takes 24 bytes and its name: the first read's size
			// bounds what its names need, and most directories take one.
			all, ends = make([]byte, 0, n), make([]int, 0, n/24)
		}
		var ok bool
		if all, ends, ok = appendDirents(all, ends, buf[:n]); !ok {
			return nil, unix.EIO
		}
	}
	s := unsafe.String(unsafe.SliceData(all), len(all)) // all is not written again
	names := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		names[i] = s[start:end]
		start = end
	}
	return names, nil
}

// appendDirents appends the names of the linux_dirent64 records in b to all,
// and where each ends to ends; false when a record is malformed.
func appendDirents(all []byte, ends []int, b []byte) ([]byte, []int, bool) {
	// struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type,
	// then the NUL-terminated name.
	const nameOff = 19
	for len(b) > 0 {
		if len(b) < nameOff {
			return all, ends, false
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:]))
		if reclen <= nameOff || reclen > len(b) {
			return all, ends, false
		}
		name := b[nameOff:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		b = b[reclen:]
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		all = append(all, name...)
		ends = append(ends, len(all))
	}
	return all, ends, true
}
