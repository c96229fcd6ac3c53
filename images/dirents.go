package images

import (
	"unsafe"

	"github.com/machined-go/machined/internal/bufpool"
	"github.com/machined-go/machined/internal/getdents"
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
	r := getdents.NewReader(fd, (*bp)[:direntBufSize])
	var all []byte
	var ends []int
	for {
		e, ok, err := r.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if all == nil {
			// A record takes 24 bytes and its name: the first batch's size
			// bounds what its names need, and most directories take one.
			n := r.BatchBytes()
			all, ends = make([]byte, 0, n), make([]int, 0, n/24)
		}
		all = append(all, e.Name...)
		ends = append(ends, len(all))
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
