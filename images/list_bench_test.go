package images

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

// benchPool is a pool of 1,000 directory images, each with an os-release and a
// hostname.
func benchPool(b *testing.B) *Pool {
	dir := b.TempDir()
	for i := range 1000 {
		root := filepath.Join(dir, fmt.Sprintf("image-%04d", i))
		filetest.WriteFile(b, filepath.Join(root, "usr/lib/os-release"), "ID=bench\nVERSION_ID=1\n", 0o644)
		filetest.WriteFile(b, filepath.Join(root, "etc/hostname"), "bench\n", 0o644)
	}
	p, _ := testPool(b, dir)
	return p
}

// cpu-ns/op is the process's CPU time (user and system, the collector's
// included) per List: unlike the wall clock, it does not grow with what else
// the machine runs.
func BenchmarkList1000(b *testing.B) {
	p := benchPool(b)
	b.ResetTimer()
	cpu0 := processCPU(b)
	for b.Loop() {
		imgs, err := p.List()
		if err != nil || len(imgs) != 1000 {
			b.Fatalf("%d images, %v", len(imgs), err)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func processCPU(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
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
