package containerfs

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// direntRecord encodes one linux_dirent64 record, padded to 8 bytes.
func direntRecord(ino uint64, typ uint8, name string) []byte {
	n := (direntName + len(name) + 1 + 7) &^ 7
	rec := make([]byte, n)
	binary.NativeEndian.PutUint64(rec, ino)
	binary.NativeEndian.PutUint16(rec[direntReclen:], uint16(n))
	rec[direntType] = typ
	copy(rec[direntName:], name)
	return rec
}

// A batch holding only "." and ".." (or only deleted entries) is not the end
// of the directory: only a read of nothing is. Stopping at the first empty
// batch made a copy skip a whole directory and report success.
func TestNextDirentsReadsPastABatchOfDots(t *testing.T) {
	batches := [][]byte{
		append(direntRecord(1, unix.DT_DIR, "."), direntRecord(2, unix.DT_DIR, "..")...),
		direntRecord(0, unix.DT_REG, "deleted"),
		append(direntRecord(3, unix.DT_REG, "a"), direntRecord(4, unix.DT_DIR, "b")...),
		{},
	}
	read := func(b []byte) (int, error) {
		if len(batches) == 0 {
			return 0, nil
		}
		n := copy(b, batches[0])
		batches = batches[1:]
		return n, nil
	}
	buf := make([]byte, 4096)
	ents, err := nextDirents(read, buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []dirent{{"a", unix.DT_REG}, {"b", unix.DT_DIR}}
	if !slices.Equal(ents, want) {
		t.Fatalf("first batch %v, want %v", ents, want)
	}
	if ents, err = nextDirents(read, buf, ents); err != nil || len(ents) != 0 {
		t.Fatalf("after the last entry: %v %v, want the end", ents, err)
	}
}
