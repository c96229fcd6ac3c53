package images

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// benchPool is a pool of 1,000 directory images, each with an os-release and a
// hostname.
func benchPool(b *testing.B) *Pool {
	dir := b.TempDir()
	for i := range 1000 {
		root := filepath.Join(dir, fmt.Sprintf("image-%04d", i))
		writeFile(b, filepath.Join(root, "usr/lib/os-release"), "ID=bench\nVERSION_ID=1\n", 0o644)
		writeFile(b, filepath.Join(root, "etc/hostname"), "bench\n", 0o644)
	}
	p, _ := testPool(b, dir)
	return p
}

func BenchmarkList1000(b *testing.B) {
	p := benchPool(b)
	b.ResetTimer()
	for b.Loop() {
		imgs, err := p.List()
		if err != nil || len(imgs) != 1000 {
			b.Fatalf("%d images, %v", len(imgs), err)
		}
	}
}

func BenchmarkList1000WithMetadata(b *testing.B) {
	p := benchPool(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		imgs, err := p.List()
		if err != nil || len(imgs) != 1000 {
			b.Fatalf("%d images, %v", len(imgs), err)
		}
		for _, img := range imgs {
			if md, err := p.Metadata(ctx, img, AllMetadata); err != nil || md.Hostname != "bench" {
				b.Fatalf("%s: %+v, %v", img.Name, md, err)
			}
		}
	}
}
