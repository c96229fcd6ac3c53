package images

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

func TestListTypesAndPriority(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	first, second := filepath.Join(root, "etc"), filepath.Join(root, "var")
	mkdirs(t, filepath.Join(first, "dup"), filepath.Join(second, "dup"), filepath.Join(second, "tree"),
		filepath.Join(second, "dir.raw"), filepath.Join(second, ".hidden"))
	filetest.WriteFile(t, filepath.Join(second, "disk.raw"), "data", 0o644)
	filetest.WriteFile(t, filepath.Join(second, "notraw"), "x", 0o644) // a plain file is no image
	if err := unix.Mkfifo(filepath.Join(second, "fifo.raw"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tree", filepath.Join(second, "link")); err != nil {
		t.Fatal(err)
	}
	backing := filepath.Join(root, "blk.img")
	run(t, "truncate", "-s", "1M", backing)
	dev := loopDevice(t, backing)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(second, "blk"), unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}

	p, _ := testPool(t, first, second)
	imgs, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".hidden", "blk", "dir.raw", "disk", "dup", "link", "tree"}
	if got := names(imgs); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for name, typ := range map[string]Type{"tree": TypeDirectory, "dir.raw": TypeDirectory, "disk": TypeRaw,
		"blk": TypeBlock, "link": TypeDirectory} {
		if got := byName(t, imgs, name).Type; got != typ {
			t.Errorf("%s: type %s, want %s", name, got, typ)
		}
	}
	if got := byName(t, imgs, "dup").Path; got != filepath.Join(first, "dup") {
		t.Errorf("dup: path %s, want the first directory's", got)
	}
	if got := byName(t, imgs, "link").Path; got != filepath.Join(second, "link") {
		t.Errorf("link: path %s, want the link's own path", got)
	}
	blk := byName(t, imgs, "blk")
	if blk.Usage != 1<<20 || blk.Limit != 1<<20 || blk.UsageExclusive != 1<<20 || blk.LimitExclusive != 1<<20 {
		t.Errorf("block sizes %+v, want the device size", blk)
	}
	for _, img := range imgs {
		got, err := p.Get(img.Name)
		if err != nil {
			t.Errorf("Get(%q): %v", img.Name, err)
			continue
		}
		if got != img {
			t.Errorf("Get(%q) = %+v, List said %+v", img.Name, got, img)
		}
	}
	for _, name := range []string{"notraw", "fifo", "fifo.raw", "nope", "..", "a/b", ".#x"} {
		if _, err := p.Get(name); !errors.Is(err, ErrNoSuchImage) {
			t.Errorf("Get(%q) = %v, want ErrNoSuchImage", name, err)
		}
	}
}

// A directory and a raw file of the same name in one directory: the directory
// wins, in List as in Get, whatever the readdir order.
func TestListPrefersLookupOrder(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "same"))
	filetest.WriteFile(t, filepath.Join(dir, "same.raw"), "x", 0o644)
	p, _ := testPool(t, dir)
	imgs, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if img := byName(t, imgs, "same"); img.Type != TypeDirectory || len(imgs) != 1 {
		t.Fatalf("List = %+v, want only the directory", imgs)
	}
}

func TestRawSizesTimesAndReadOnly(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw")
	filetest.WriteFile(t, path, "", 0o644)
	if err := os.Truncate(path, 10<<20); err != nil { // sparse: size without blocks
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, 8192), 0)
	f.Close()
	mtime := int64(1_700_000_000)
	if err := os.Chtimes(path, unixTime(mtime), unixTime(mtime)); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(path, &st)

	p, _ := testPool(t, dir)
	img, err := p.Get("disk")
	if err != nil {
		t.Fatal(err)
	}
	if img.Usage != uint64(st.Blocks)*512 || img.UsageExclusive != img.Usage {
		t.Errorf("usage %d/%d, want %d", img.Usage, img.UsageExclusive, st.Blocks*512)
	}
	if img.Limit != 10<<20 || img.LimitExclusive != 10<<20 {
		t.Errorf("limit %d/%d, want the file size", img.Limit, img.LimitExclusive)
	}
	if img.MTime != uint64(mtime)*1e6 {
		t.Errorf("mtime %d, want %d", img.MTime, mtime*1e6)
	}
	if img.CrTime == 0 {
		t.Errorf("crtime 0 on a file system that records birth times")
	}
	if img.ReadOnly {
		t.Errorf("writable raw image reported read-only")
	}
	os.Chmod(path, 0o444)
	if img, _ = p.Get("disk"); !img.ReadOnly {
		t.Errorf("raw image without write bits not read-only")
	}
}

func TestDirectoryReadOnlyAndSizes(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	mkdirs(t, tree)
	p, _ := testPool(t, dir)
	img, err := p.Get("tree")
	if err != nil {
		t.Fatal(err)
	}
	if img.ReadOnly || img.MTime != 0 || img.CrTime == 0 {
		t.Errorf("directory %+v: want writable, mtime 0, a crtime", img)
	}
	if img.Usage != math.MaxUint64 || img.UsageExclusive != math.MaxUint64 || img.Limit != math.MaxUint64 || img.LimitExclusive != math.MaxUint64 {
		t.Errorf("directory off btrfs: sizes %+v, want all unknown", img)
	}
	clearImmutable(t, tree)
	if err := setImmutablePath(tree, true); err != nil {
		t.Fatal(err)
	}
	if img, _ = p.Get("tree"); !img.ReadOnly {
		t.Errorf("immutable directory not read-only")
	}
	setImmutablePath(tree, false)

	// A read-only mount makes every image on it read-only.
	ro := filepath.Join(t.TempDir(), "ro")
	mkdirs(t, ro)
	run(t, "mount", "--bind", dir, ro)
	t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	run(t, "mount", "-o", "remount,bind,ro", ro)
	rp, _ := testPool(t, ro)
	if img, err = rp.Get("tree"); err != nil || !img.ReadOnly {
		t.Errorf("image on a read-only mount: %+v, %v; want read-only", img, err)
	}
}

func TestHiddenAndHost(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, ".hidden"))
	p, cfg := testPool(t, dir)
	img, err := p.Get(".hidden")
	if err != nil {
		t.Fatal(err)
	}
	if !img.Hidden() || !img.ReadOnly {
		t.Errorf("hidden image %+v: want hidden and read-only", img)
	}
	if _, err := p.Get(HostName); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("Get(.host) without Host = %v", err)
	}
	cfg.Host = true
	hp := NewPool(cfg)
	host, err := hp.Get(HostName)
	if err != nil {
		t.Fatal(err)
	}
	if host.Path != "/" || host.Type != TypeDirectory || !host.ReadOnly || !host.Host() {
		t.Errorf(".host = %+v", host)
	}
	imgs, _ := hp.List()
	if byName(t, imgs, HostName) != host {
		t.Errorf("List's .host differs from Get's")
	}
}

func TestBlockDeviceReadOnly(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	backing := filepath.Join(t.TempDir(), "b.img")
	run(t, "truncate", "-s", "2M", backing)
	for _, ro := range []bool{false, true} {
		var dev string
		if ro {
			dev = loopDevice(t, backing, "-r")
		} else {
			dev = loopDevice(t, backing)
		}
		var st unix.Stat_t
		unix.Stat(dev, &st)
		name := fmt.Sprintf("blk%v", ro)
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
			t.Fatal(err)
		}
		p, _ := testPool(t, dir)
		img, err := p.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if img.ReadOnly != ro || img.Usage != 2<<20 {
			t.Errorf("%s: %+v, want read-only=%v, 2 MiB", dev, img, ro)
		}
	}
}

func TestVersionedImages(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	v := filepath.Join(dir, "os.v")
	mkdirs(t, filepath.Join(v, "os_1.2"), filepath.Join(v, "os_1.10"), filepath.Join(v, "os_1.9"),
		filepath.Join(v, "os_1.20_arm64"), // another architecture
		filepath.Join(v, "os_1.30+0"),     // no tries left
		filepath.Join(v, "other_9"))       // another base name
	rv := filepath.Join(dir, "disk.raw.v")
	filetest.WriteFile(t, filepath.Join(rv, "disk_2.raw"), "2", 0o644)
	filetest.WriteFile(t, filepath.Join(rv, "disk_3_x86-64.raw"), "3", 0o644)
	filetest.WriteFile(t, filepath.Join(rv, "disk_3.raw"), "3", 0o644)
	filetest.WriteFile(t, filepath.Join(rv, "disk_1.raw"), "1", 0o644)
	mkdirs(t, filepath.Join(dir, "empty.v"))
	wrong := filepath.Join(dir, "wrong.v")
	mkdirs(t, filepath.Join(wrong, "wrong_1"))
	filetest.WriteFile(t, filepath.Join(wrong, "wrong_2"), "newest is a file", 0o644)

	p, _ := testPool(t, dir)
	imgs, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(imgs); !slices.Equal(got, []string{"disk", "os"}) {
		t.Fatalf("List = %v, want [disk os] (empty.v and wrong.v have no usable version)", got)
	}
	if got := byName(t, imgs, "os"); got.Path != filepath.Join(v, "os_1.10") || got.Type != TypeDirectory {
		t.Errorf("os = %+v, want os_1.10", got)
	}
	want := "disk_3.raw"
	if localArchitectures[0] == "x86-64" {
		want = "disk_3_x86-64.raw" // same version, the native architecture wins
	}
	if got := byName(t, imgs, "disk"); got.Path != filepath.Join(rv, want) || got.Type != TypeRaw {
		t.Errorf("disk = %+v, want %s", got, want)
	}
	if img, err := p.Get("os"); err != nil || img.Path != filepath.Join(v, "os_1.10") {
		t.Errorf("Get(os) = %+v, %v", img, err)
	}
	// The versions carry the name: renaming one would only hide it.
	if err := p.Rename("os", "other"); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("Rename of a versioned image = %v, want EOPNOTSUPP", err)
	}
	// Removing removes the version in use; the next best takes over.
	if err := p.Remove(context.Background(), "os"); err != nil {
		t.Fatal(err)
	}
	if img, err := p.Get("os"); err != nil || img.Path != filepath.Join(v, "os_1.9") {
		t.Errorf("after removing 1.10: %+v, %v", img, err)
	}
}

func TestParseVersionEntry(t *testing.T) {
	for _, tc := range []struct {
		file, version string
		left, done    uint64
		ok            bool
	}{
		{"os_1", "1", noTries, noTries, true},
		{"os_1+3", "1", 3, 0, true},
		{"os_1+3-2", "1", 3, 2, true},
		{"os_1+x", "", 0, 0, false}, // '+' is no version character
		{"os_1_s390", "", 0, 0, false},
		{"os_", "", 0, 0, false},
		{"os", "", 0, 0, false},
		{"oss_1", "", 0, 0, false},
	} {
		c, ok := parseVersionEntry(tc.file, "os", "")
		if ok != tc.ok || ok && (c.version != tc.version || c.triesLeft != tc.left || c.triesDone != tc.done) {
			t.Errorf("parseVersionEntry(%q) = %+v, %v", tc.file, c, ok)
		}
	}
}

// A symlink loop in the pool is skipped by List; Get names the problem.
func TestSymlinkLoopAndVanishedEntries(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "ok"))
	os.Symlink("loop", filepath.Join(dir, "loop"))
	os.Symlink("nowhere", filepath.Join(dir, "dangling"))
	p, _ := testPool(t, dir)
	imgs, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(imgs); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("List = %v, want [ok]", got)
	}
	if _, err := p.Get("loop"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("Get(loop) = %v, want ELOOP", err)
	}
	// An entry readdir saw that is gone when looked at is no image, not an error.
	if _, err := lookupIn(dir, "gone", map[string]bool{"gone": true}); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("vanished entry: %v, want ErrNoSuchImage", err)
	}
}

// The pool keeps no list: what appears or goes is seen by the next call.
func TestListIsFresh(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	if imgs, _ := p.List(); len(imgs) != 0 {
		t.Fatalf("empty pool lists %v", names(imgs))
	}
	mkdirs(t, filepath.Join(dir, "new"))
	if imgs, _ := p.List(); !slices.Equal(names(imgs), []string{"new"}) {
		t.Fatalf("after mkdir: %v", names(imgs))
	}
	os.Remove(filepath.Join(dir, "new"))
	if imgs, _ := p.List(); len(imgs) != 0 {
		t.Fatalf("after rmdir: %v", names(imgs))
	}
}

// Images come and go while the pool is listed: List never fails on that, and
// shows each image whole or not at all.
func TestListWhileImagesComeAndGo(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := fmt.Sprintf("img%d", i%40)
			os.Mkdir(filepath.Join(dir, n), 0o755)
			os.WriteFile(filepath.Join(dir, n+"x.raw"), []byte("x"), 0o644)
			os.MkdirAll(filepath.Join(dir, n+"v.v", n+"v_1"), 0o755)
			os.Remove(filepath.Join(dir, fmt.Sprintf("img%d", (i+20)%40)))
			os.Remove(filepath.Join(dir, fmt.Sprintf("img%dx.raw", (i+20)%40)))
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("img%dv.v", (i+20)%40)))
		}
	}()
	for range 300 {
		imgs, err := p.List()
		if err != nil {
			t.Fatalf("List while images change: %v", err)
		}
		for _, img := range imgs {
			if img.Type == "" || img.Path == "" || ValidName(img.Name) != nil {
				t.Fatalf("half an image: %+v", img)
			}
		}
	}
	close(stop)
	<-done
}
