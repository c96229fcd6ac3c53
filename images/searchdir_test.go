package images

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// List describes the common images from one stat of each entry; Get opens
// them. Both must say the same of every kind of image, whatever was changed
// between two listings.
func TestListAgreesWithGet(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	elsewhere := t.TempDir()
	mkdirs(t, filepath.Join(dir, "plain"), filepath.Join(dir, "frozen"), filepath.Join(dir, ".hidden"),
		filepath.Join(dir, "tree.raw"), filepath.Join(dir, "ver.v", "ver_1"), filepath.Join(elsewhere, "target"),
		filepath.Join(elsewhere, "ro", "onro"))
	writeFile(t, filepath.Join(dir, "disk.raw"), "data", 0o644)
	writeFile(t, filepath.Join(dir, "sealed.raw"), "data", 0o444)
	writeFile(t, filepath.Join(dir, "plain.raw"), "shadowed by the directory", 0o644)
	os.Symlink(filepath.Join(elsewhere, "target"), filepath.Join(dir, "linked"))
	clearImmutable(t, filepath.Join(dir, "frozen"))
	if err := setImmutablePath(filepath.Join(dir, "frozen"), true); err != nil {
		t.Fatal(err)
	}
	// An image reached through a link onto a read-only mount, listed beside
	// writable ones of the search directory's own mount.
	ro := filepath.Join(elsewhere, "ro")
	run(t, "mount", "--bind", ro, ro)
	t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	run(t, "mount", "-o", "remount,bind,ro", ro)
	os.Symlink(filepath.Join(ro, "onro"), filepath.Join(dir, "onro"))

	_, cfg := testPool(t, dir)
	cfg.Host = true
	p := NewPool(cfg)
	check := func(stage string, want map[string]bool) {
		t.Helper()
		imgs, err := p.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != len(want) || !slices.IsSorted(names(imgs)) {
			t.Errorf("%s: List = %v, want %d images sorted by name", stage, names(imgs), len(want))
		}
		for _, img := range imgs {
			got, err := p.Get(img.Name)
			if err != nil || got != img {
				t.Errorf("%s: List says %+v, Get says %+v, %v", stage, img, got, err)
			}
			if ro, ok := want[img.Name]; !ok || img.ReadOnly != ro {
				t.Errorf("%s: %s read-only=%v, want %v (listed: %v)", stage, img.Name, img.ReadOnly, ro, ok)
			}
		}
	}
	want := map[string]bool{HostName: true, "plain": false, "frozen": true, ".hidden": true, "tree.raw": false, "ver": false,
		"linked": false, "onro": true, "disk": false, "sealed": true}
	check("first", want)

	setImmutablePath(filepath.Join(dir, "frozen"), false)
	if err := setImmutablePath(filepath.Join(dir, "plain"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setImmutablePath(filepath.Join(dir, "plain"), false) })
	os.Chmod(filepath.Join(dir, "sealed.raw"), 0o644)
	os.Chmod(filepath.Join(dir, "disk.raw"), 0o444)
	os.Rename(filepath.Join(dir, "linked"), filepath.Join(dir, "relinked"))
	want["frozen"], want["plain"], want["sealed"], want["disk"] = false, true, false, true
	delete(want, "linked")
	want["relinked"] = false
	check("after chattr, chmod and rename", want)
}

// A listing costs a bounded number of allocations per image: each entry is
// statted in place, not looked up again by path.
func TestListAllocationsPerImage(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	const n = 200
	for i := range n {
		mkdirs(t, filepath.Join(dir, fmt.Sprintf("image-%03d", i)))
	}
	p, _ := testPool(t, dir)
	allocs := testing.AllocsPerRun(5, func() {
		if imgs, err := p.List(); err != nil || len(imgs) != n {
			t.Fatalf("%d images, %v", len(imgs), err)
		}
	})
	if perImage := allocs / n; perImage > 4 {
		t.Errorf("%.1f allocations per image, want at most 4", perImage)
	}
}
