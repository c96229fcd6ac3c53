package images

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/machined-go/machined/internal/filetest"
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
	filetest.WriteFile(t, filepath.Join(dir, "disk.raw"), "data", 0o644)
	filetest.WriteFile(t, filepath.Join(dir, "sealed.raw"), "data", 0o444)
	filetest.WriteFile(t, filepath.Join(dir, "plain.raw"), "shadowed by the directory", 0o644)
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

// A listing's allocations do not grow with the number of images: each entry
// is statted in place, not looked up again by path, and the names and paths
// of a directory's entries take one allocation each for all of them.
func TestListAllocationsPerImage(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	const n = 200
	var allocs [2]float64
	for round := range allocs {
		for i := range n {
			mkdirs(t, filepath.Join(dir, fmt.Sprintf("image-%d-%03d", round, i)))
		}
		allocs[round] = testing.AllocsPerRun(5, func() {
			if imgs, err := p.List(); err != nil || len(imgs) != (round+1)*n {
				t.Fatalf("%d images, %v", len(imgs), err)
			}
		})
	}
	if perImage := (allocs[1] - allocs[0]) / n; perImage > 0.05 {
		t.Errorf("%.2f more allocations per image (%v for %d and %d images), want none", perImage, allocs, n, 2*n)
	}
}

// Where a file system reports no attributes in its stats, the immutable flag
// is asked of the directory itself, and only of the inode that was statted.
func TestImmutableWithoutStatAttributes(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	frozen := filepath.Join(dir, "frozen")
	mkdirs(t, frozen, filepath.Join(dir, "plain"))
	clearImmutable(t, frozen)
	if err := setImmutablePath(frozen, true); err != nil {
		t.Fatal(err)
	}
	sd, err := readSearchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.close()
	for file, want := range map[string]bool{"frozen": true, "plain": false} {
		st := *sd.stat(sd.index(t, file))
		st.Attributes_mask, st.Attributes = 0, 0
		if got, ok := sd.immutable(file, &st); !ok || got != want {
			t.Errorf("%s without stat attributes: immutable=%v (known %v), want %v", file, got, ok, want)
		}
		st.Ino++ // another inode than the one there now
		if _, ok := sd.immutable(file, &st); ok {
			t.Errorf("%s: an entry replaced since its stat was answered for", file)
		}
	}
}

// A mount is asked about only through an entry the kernel names the mount of,
// and only while that entry still lives on it.
func TestMountFlagsNeedTheMountID(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "tree"))
	sd, err := readSearchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.close()
	st := *sd.stat(sd.index(t, "tree"))
	path := filepath.Join(dir, "tree")
	mf := mountFlags{}
	if _, ok := mf.of(path, &st); !ok || len(mf) != 1 {
		t.Fatalf("mount of a statted entry unknown (%v)", mf)
	}
	noID := st
	noID.Mask &^= unix.STATX_MNT_ID
	if _, ok := (mountFlags{}).of(path, &noID); ok {
		t.Errorf("mount answered for a stat without a mount ID")
	}
	moved := st
	moved.Mnt_id++ // the entry is elsewhere now
	if m, ok := (mountFlags{}).of(path, &moved); ok {
		t.Errorf("mount %+v answered for another mount's ID", m)
	}
}

// index is the position of the entry called file, which must be there.
func (d *searchDir) index(t *testing.T, file string) int {
	t.Helper()
	i, ok := d.find(file, "")
	if !ok {
		t.Fatalf("%s: no entry %q", d.path, file)
	}
	return i
}
