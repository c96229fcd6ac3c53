package getdents

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// record encodes one linux_dirent64 record of length reclen (0: the least
// that holds the name and its NUL, padded to 8 bytes).
func record(ino uint64, typ uint8, name string, reclen int) []byte {
	if reclen == 0 {
		reclen = (offName + len(name) + 1 + 7) &^ 7
	}
	b := make([]byte, max(reclen, offName+len(name)))
	binary.NativeEndian.PutUint64(b, ino)
	binary.NativeEndian.PutUint16(b[offReclen:], uint16(reclen))
	b[offType] = typ
	copy(b[offName:], name)
	return b
}

// batches is a reader over the given reads; once they are used up every
// read returns nothing. reads counts the reads made.
func batches(reads *int, bs ...[]byte) Reader {
	return Reader{buf: make([]byte, 4096), read: func(_ int, buf []byte) (int, error) {
		*reads++
		if len(bs) == 0 {
			return 0, nil
		}
		n := copy(buf, bs[0])
		bs = bs[1:]
		return n, nil
	}}
}

type entry struct {
	name string
	typ  uint8
}

// all reads r to its end or its first error.
func all(r *Reader) ([]entry, error) {
	var got []entry
	for {
		e, ok, err := r.Next()
		if err != nil || !ok {
			return got, err
		}
		got = append(got, entry{string(e.Name), e.Type})
	}
}

// Every entry of a real directory, with its type, over many reads; "." and
// ".." left out.
func TestReaderGivesEveryEntry(t *testing.T) {
	dir := t.TempDir()
	want := map[string]uint8{}
	for i := range 500 {
		name := "entry-with-a-long-name-" + strconv.Itoa(i)
		if i%3 == 0 {
			os.Mkdir(dir+"/"+name, 0o755)
			want[name] = unix.DT_DIR
		} else {
			os.WriteFile(dir+"/"+name, nil, 0o644)
			want[name] = unix.DT_REG
		}
	}
	os.Symlink("x", dir+"/link")
	want["link"] = unix.DT_LNK
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	reads := 0
	r := NewReader(d, make([]byte, 1024))
	r.read = func(fd int, buf []byte) (int, error) { reads++; return unix.Getdents(fd, buf) }
	got := map[string]uint8{}
	for {
		e, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if _, dup := got[string(e.Name)]; dup {
			t.Errorf("%s listed twice", e.Name)
		}
		got[string(e.Name)] = e.Type
	}
	if reads < 3 {
		t.Fatalf("%d reads: the test must span several", reads)
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d", len(got), len(want))
	}
	for name, typ := range want {
		// DT_UNKNOWN is allowed: not every file system stores types.
		if g, ok := got[name]; !ok || g != typ && g != unix.DT_UNKNOWN {
			t.Errorf("%s: type %d (listed %v), want %d", name, g, ok, typ)
		}
	}
}

// A batch holding only "." and ".." (or only deleted entries) is not the end
// of the directory: only a read of nothing is. Stopping at the first empty
// batch made a copy skip a whole directory and report success.
func TestOnlyAReadOfNothingEnds(t *testing.T) {
	reads := 0
	r := batches(&reads,
		slices.Concat(record(1, unix.DT_DIR, ".", 0), record(2, unix.DT_DIR, "..", 0)),
		record(0, unix.DT_REG, "deleted", 0),
		slices.Concat(record(3, unix.DT_REG, "a", 0), record(4, unix.DT_DIR, "b", 0)),
	)
	got, err := all(&r)
	if want := []entry{{"a", unix.DT_REG}, {"b", unix.DT_DIR}}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if reads != 4 {
		t.Errorf("%d reads, want the three batches and the read of nothing", reads)
	}
	if _, ok, err := r.Next(); ok || err != nil {
		t.Errorf("after the end: %v %v, want the end again", ok, err)
	}
}

// Left out: the dots and entries with inode 0; names that only look like
// them are entries.
func TestDotsAndDeletedLeftOut(t *testing.T) {
	var reads int
	r := batches(&reads, slices.Concat(
		record(1, unix.DT_DIR, ".", 0), record(2, unix.DT_DIR, "..", 0), record(0, unix.DT_REG, "gone", 0),
		record(3, unix.DT_DIR, "...", 0), record(4, unix.DT_REG, ".a", 0), record(5, unix.DT_REG, "..b", 0)))
	got, err := all(&r)
	if want := []entry{{"...", unix.DT_DIR}, {".a", unix.DT_REG}, {"..b", unix.DT_REG}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
}

// A name ends at its first NUL, or at the end of its record where it has
// none; the padding after it is not part of it.
func TestNameEndsAtNULOrRecord(t *testing.T) {
	padded := record(1, unix.DT_REG, "a", 32)
	copy(padded[offName+2:], "junk")
	unterminated := record(2, unix.DT_REG, "", 24)
	copy(unterminated[offName:], "bcdef")
	var reads int
	r := batches(&reads, slices.Concat(padded, unterminated))
	got, err := all(&r)
	if want := []entry{{"a", unix.DT_REG}, {"bcdef", unix.DT_REG}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
}

// A batch whose records do not add up is an error, never the end: the
// entries before the bad record come out, nothing after it, and every later
// call fails alike.
func TestMalformedBatches(t *testing.T) {
	good := record(1, unix.DT_REG, "a", 0)
	for name, b := range map[string][]byte{
		"shorter than a header":   record(1, unix.DT_REG, "b", 0)[:offName-1],
		"cut in the length":       record(1, unix.DT_REG, "b", 0)[:offReclen+1],
		"length below the header": record(1, unix.DT_REG, "b", offName-1),
		"no room for the NUL":     record(1, unix.DT_REG, "b", offName),
		"length beyond the batch": record(1, unix.DT_REG, "b", 64)[:32],
		"an empty name":           record(1, unix.DT_REG, "", 0),
		"an empty name, inode 0":  record(0, unix.DT_REG, "", 0),
		"a length of 0":           slices.Concat(record(1, unix.DT_REG, "b", 0)[:offReclen], []byte{0, 0}, record(1, unix.DT_REG, "b", 0)[offReclen+2:]),
	} {
		var reads int
		r := batches(&reads, slices.Concat(good, b), record(2, unix.DT_REG, "later", 0))
		got, err := all(&r)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, unix.EIO) {
			t.Errorf("%s: error %v, want malformed", name, err)
		}
		if want := []entry{{"a", unix.DT_REG}}; !slices.Equal(got, want) {
			t.Errorf("%s: entries %v, want %v", name, got, want)
		}
		if _, ok, err := r.Next(); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: the call after the error: %v %v, want the error again", name, ok, err)
		}
	}
}

// An interrupted read is made again; any other failed read is an error, not
// the end.
func TestReadErrors(t *testing.T) {
	var reads int
	r := Reader{buf: make([]byte, 64), read: func(_ int, buf []byte) (int, error) {
		reads++
		switch reads {
		case 1:
			return -1, unix.EINTR
		case 2:
			return copy(buf, record(1, unix.DT_REG, "a", 0)), nil
		}
		return -1, unix.EIO
	}}
	got, err := all(&r)
	if want := []entry{{"a", unix.DT_REG}}; !slices.Equal(got, want) || err != unix.EIO {
		t.Errorf("got %v %v, want %v and EIO", got, err, want)
	}
}

// A buffer that cannot hold the next record makes the read fail: the
// directory is not taken to end there. One that holds the longest record
// (a 255-byte name) reads it.
func TestBufferBound(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 255)
	if err := os.WriteFile(dir+"/"+long, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	longest := (offName + 255 + 1 + 7) &^ 7
	small := NewReader(d, make([]byte, longest-8))
	if _, err := all(&small); err != unix.EINVAL {
		t.Errorf("a buffer short of the record: %v, want EINVAL", err)
	}
	unix.Seek(d, 0, 0)
	fits := NewReader(d, make([]byte, longest))
	if got, err := all(&fits); err != nil || len(got) != 1 || got[0].name != long {
		t.Errorf("a buffer of the longest record: %d entries, %v", len(got), err)
	}
}

// BatchBytes is the size of the read the current entry came from.
func TestBatchBytes(t *testing.T) {
	first := slices.Concat(record(1, unix.DT_DIR, ".", 0), record(2, unix.DT_REG, "a", 0))
	second := record(3, unix.DT_REG, "b", 0)
	var reads int
	r := batches(&reads, first, second)
	for _, want := range []int{len(first), len(second)} {
		if _, ok, err := r.Next(); !ok || err != nil || r.BatchBytes() != want {
			t.Errorf("%v %v: batch of %d bytes, want %d", ok, err, r.BatchBytes(), want)
		}
	}
}

// Reading a directory allocates nothing per entry.
func TestNextAllocatesNothing(t *testing.T) {
	var batch []byte
	for i := range 100 {
		batch = append(batch, record(uint64(i+1), unix.DT_REG, "entry-"+strconv.Itoa(i), 0)...)
	}
	r := Reader{buf: make([]byte, len(batch)), read: func(_ int, buf []byte) (int, error) { return copy(buf, batch), nil }}
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, ok, err := r.Next(); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per entry", allocs)
	}
}
