package busconn

import (
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

// imageEntry has the shape of machine1's ListImages rows, a(ssbttto).
type imageEntry struct {
	Name, Type    string
	ReadOnly      bool
	CrTime, MTime uint64
	Usage         uint64
	Path          dbus.ObjectPath
}

func imageList(n int) []imageEntry {
	out := make([]imageEntry, n)
	for i := range out {
		name := fmt.Sprintf("bench-img-%d", i)
		out[i] = imageEntry{name, "directory", i%2 == 1, 1_700_000_000_000_000 + uint64(i), ^uint64(0) - uint64(i), uint64(i) << 33,
			dbus.ObjectPath("/org/freedesktop/machine1/image/bench_2dimg_2d" + fmt.Sprint(i))}
	}
	return out
}

func BenchmarkAppendMessageImages1000(b *testing.B) {
	m := reply(imageList(1000))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = appendMessage(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
