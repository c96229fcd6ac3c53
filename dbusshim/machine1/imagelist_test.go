package machine1

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/images"
	"github.com/machined-go/machined/service"
)

// reflectedEntry is a ListImages row as a struct, which the encoder writes by
// reflection as godbus does.
type reflectedEntry struct {
	Name, Type    string
	ReadOnly      bool
	CrTime, MTime uint64
	Usage         uint64
	Path          dbus.ObjectPath
}

// imageList writes the bytes the same rows make as structs, whatever the
// names (escaped into their paths) and values.
func TestImageListIsTheStructs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"", ".host", "fedora-40.x86_64", "é", "9lives", "a_b", "x"}
	for range 500 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(0x20 + rng.IntN(0x5f))
		}
		names = append(names, string(b))
	}
	types := []images.Type{images.TypeDirectory, images.TypeSubvolume, images.TypeRaw, images.TypeBlock}
	var list imageList
	var structs []reflectedEntry
	for i, name := range names {
		img := service.Image{Name: name, Type: types[i%4], ReadOnly: i%3 == 0,
			CrTime: rng.Uint64(), MTime: uint64(i), Usage: ^uint64(0) >> (i % 64)}
		list = append(list, service.ImageEntry{Image: img})
		structs = append(structs, reflectedEntry{name, string(img.Type), img.ReadOnly, img.CrTime, img.MTime, img.Usage, ImagePath(name)})
	}
	for _, n := range []int{0, 1, len(list)} {
		got, err := busconn.EncodeBody(list[:n])
		if err != nil {
			t.Fatal(err)
		}
		want, err := busconn.EncodeBody(structs[:n])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%d entries: %d bytes, the structs %d", n, len(got), len(want))
		}
	}
	if sig := dbus.SignatureOf(structs).String(); list.DBusSignature() != sig {
		t.Errorf("signature %q, the structs' %q", list.DBusSignature(), sig)
	}
}

// appendLabelPath writes the path ImagePath makes.
func TestAppendLabelPathIsImagePath(t *testing.T) {
	buf := []byte("junk")
	for _, name := range []string{"", "rawhide", "fedora-40", ".host", "é", "a.b.c-d_e", "0day"} {
		buf = appendLabelPath(buf[:0], imagePrefix, name)
		if string(buf) != string(ImagePath(name)) {
			t.Errorf("%q: %q, want %q", name, buf, ImagePath(name))
		}
	}
}

// Writing the list makes no string per image: what it allocates is the
// encoder's buffer growing.
func TestImageListAllocationsDoNotGrowPerImage(t *testing.T) {
	allocs := func(n int) float64 {
		list := make(imageList, n)
		for i := range list {
			list[i].Image = service.Image{Name: "bench-img-" + string(rune('a'+i%26)), Type: images.TypeDirectory}
		}
		return testing.AllocsPerRun(5, func() {
			if _, err := busconn.EncodeBody(list); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := allocs(1000); n > 50 {
		t.Errorf("%v allocations for 1,000 images", n)
	}
}
