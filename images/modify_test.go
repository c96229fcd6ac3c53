package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

func TestRename(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, cfg := testPool(t, dir)
	mkdirs(t, filepath.Join(dir, "tree"), filepath.Join(dir, "taken"))
	filetest.WriteFile(t, filepath.Join(dir, "disk.raw"), "raw", 0o644)
	filetest.WriteFile(t, filepath.Join(cfg.NspawnDirs[0], "tree.nspawn"), "[Exec]\n", 0o644)
	filetest.WriteFile(t, filepath.Join(dir, "tree.nspawn"), "[Files]\n", 0o644)
	filetest.WriteFile(t, filepath.Join(dir, "tree.roothash"), "abc", 0o644)
	filetest.WriteFile(t, filepath.Join(dir, "disk.verity"), "v", 0o644)
	clearImmutable(t, filepath.Join(dir, "tree"))
	clearImmutable(t, filepath.Join(dir, "renamed"))
	setImmutablePath(filepath.Join(dir, "tree"), true)

	if err := p.Rename("tree", "renamed"); err != nil {
		t.Fatal(err)
	}
	if !immutablePath(filepath.Join(dir, "renamed")) {
		t.Errorf("the immutable attribute did not survive the rename")
	}
	for _, f := range []string{filepath.Join(cfg.NspawnDirs[0], "renamed.nspawn"), filepath.Join(dir, "renamed.nspawn"),
		filepath.Join(dir, "renamed.roothash")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("aux file not renamed: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tree.roothash")); !os.IsNotExist(err) {
		t.Errorf("old aux file still there")
	}
	if err := p.Rename("disk", "disk2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "disk2.raw")); err != nil {
		t.Errorf("raw image lost its .raw: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "disk2.verity")); err != nil {
		t.Errorf("verity data not renamed: %v", err)
	}

	for _, tc := range []struct {
		from, to string
		want     error
	}{
		{"renamed", "taken", unix.EEXIST},
		{"renamed", "taken", ErrImageExists},
		{"renamed", "..", ErrInvalidName},
		{"renamed", "a/b", ErrInvalidName},
		{"renamed", ".#x", ErrInvalidName},
		{"renamed", "x\ty", ErrInvalidName},
		{"renamed", strings.Repeat("n", 256), ErrInvalidName},
		{"missing", "new", ErrNoSuchImage},
		{"renamed", HostName, unix.EBUSY}, // the host's name is never free
	} {
		if err := p.Rename(tc.from, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("Rename(%q, %q) = %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
}

// Vendor images (under /usr) and the host are never changed.
func TestVendorAndHostAreReadOnly(t *testing.T) {
	requireRoot(t)
	p, _ := testPool(t, t.TempDir())
	for _, img := range []Image{
		{Name: "v", Path: "/usr/lib/machines/v", Type: TypeDirectory},
		{Name: HostName, Path: "/", Type: TypeDirectory},
		{Name: HostName, Path: "/var/lib/machines/.host", Type: TypeDirectory},
		{Name: "root", Path: "/", Type: TypeDirectory},
	} {
		if err := p.remove(context.Background(), img); !errors.Is(err, unix.EROFS) {
			t.Errorf("remove %s = %v, want EROFS", img.Path, err)
		}
		if !immutableImage(img) {
			t.Errorf("%s not immutable", img.Path)
		}
	}
	hp := NewPool(Config{SearchPath: []string{t.TempDir()}, Host: true, LockDir: t.TempDir()})
	for name, err := range map[string]error{
		"rename":   hp.Rename(HostName, "x"),
		"readonly": hp.MarkReadOnly(HostName, false),
		"limit":    hp.SetLimit(HostName, 1),
		"remove":   hp.Remove(context.Background(), HostName),
	} {
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("%s .host = %v, want EROFS", name, err)
		}
	}
}

func TestMarkReadOnly(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	mkdirs(t, filepath.Join(dir, "tree"), filepath.Join(dir, ".hidden"))
	clearImmutable(t, filepath.Join(dir, "tree"))
	filetest.WriteFile(t, filepath.Join(dir, "disk.raw"), "x", 0o664)

	if err := p.MarkReadOnly("tree", true); err != nil {
		t.Fatal(err)
	}
	if !immutablePath(filepath.Join(dir, "tree")) {
		t.Errorf("directory not immutable")
	}
	if err := p.MarkReadOnly("tree", false); err != nil || immutablePath(filepath.Join(dir, "tree")) {
		t.Errorf("MarkReadOnly(false) = %v, immutable=%v", err, immutablePath(filepath.Join(dir, "tree")))
	}
	if err := p.MarkReadOnly("disk", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "disk.raw")); st.Mode().Perm() != 0o444 {
		t.Errorf("read-only raw mode %v, want 0444 (read bits kept)", st.Mode().Perm())
	}
	if err := p.MarkReadOnly("disk", false); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "disk.raw")); st.Mode().Perm() != 0o644 {
		t.Errorf("writable raw mode %v, want 0644", st.Mode().Perm())
	}
	if err := p.MarkReadOnly(".hidden", false); !errors.Is(err, unix.EROFS) {
		t.Errorf("MarkReadOnly on a hidden image = %v, want EROFS", err)
	}
}

func TestMarkReadOnlyBlock(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	backing := filepath.Join(t.TempDir(), "b.img")
	run(t, "truncate", "-s", "1M", backing)
	dev := loopDevice(t, backing)
	var st unix.Stat_t
	unix.Stat(dev, &st)
	unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(st.Rdev))
	p, _ := testPool(t, dir)
	if err := p.MarkReadOnly("blk", true); err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(run(t, "blockdev", "--getro", dev)); out != "1" {
		t.Errorf("BLKROSET not applied: getro=%s", out)
	}
	if err := p.MarkReadOnly("blk", false); err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(run(t, "blockdev", "--getro", dev)); out != "0" {
		t.Errorf("BLKROSET not cleared: getro=%s", out)
	}
}

func TestRemove(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, cfg := testPool(t, dir)
	tree := filepath.Join(dir, "tree")
	filetest.WriteFile(t, filepath.Join(tree, "etc/deep/file"), "x", 0o644)
	os.Symlink("/etc/passwd", filepath.Join(tree, "abs-link"))
	setImmutablePath(tree, true)
	clearImmutable(t, tree)
	filetest.WriteFile(t, filepath.Join(dir, "disk.raw"), "x", 0o644)
	filetest.WriteFile(t, filepath.Join(cfg.NspawnDirs[0], "tree.nspawn"), "", 0o644)
	filetest.WriteFile(t, filepath.Join(dir, "disk.roothash"), "", 0o644)
	target := t.TempDir()
	filetest.WriteFile(t, filepath.Join(target, "keep"), "x", 0o644)
	os.Symlink(target, filepath.Join(dir, "linked"))

	for _, name := range []string{"tree", "disk", "linked"} {
		if err := p.Remove(context.Background(), name); err != nil {
			t.Fatalf("Remove(%s): %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in the pool: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(cfg.NspawnDirs[0], "tree.nspawn")); !os.IsNotExist(err) {
		t.Errorf("settings file not removed")
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Errorf("removing a symlinked image removed its target's content: %v", err)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatalf("an absolute symlink inside the tree was followed: %v", err)
	}
}

// A block device under /dev keeps its node; elsewhere the node goes.
func TestRemoveBlock(t *testing.T) {
	requireRoot(t)
	backing := filepath.Join(t.TempDir(), "b.img")
	run(t, "truncate", "-s", "1M", backing)
	dev := loopDevice(t, backing)
	var st unix.Stat_t
	unix.Stat(dev, &st)
	dir := t.TempDir()
	unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(st.Rdev))
	p, _ := testPool(t, dir)
	if err := p.Remove(context.Background(), "blk"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "blk")); !os.IsNotExist(err) {
		t.Errorf("device node outside /dev not removed")
	}
	devImg := Image{Name: filepath.Base(dev), Path: dev, Type: TypeBlock}
	if err := p.remove(context.Background(), devImg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dev); err != nil {
		t.Errorf("%s removed: %v", dev, err)
	}
	// udev names the nodes in /dev: no renaming them.
	devPool := NewPool(Config{SearchPath: []string{"/dev"}, LockDir: t.TempDir(), NspawnDirs: []string{t.TempDir()}})
	if err := devPool.Rename(filepath.Base(dev), "renamed-loop"); !errors.Is(err, unix.EROFS) {
		t.Errorf("renaming %s = %v, want EROFS", dev, err)
	}
	if _, err := os.Stat(dev); err != nil {
		t.Errorf("%s gone: %v", dev, err)
	}
}

func TestCloneDirectoryCopy(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	src := filepath.Join(dir, "src")
	filetest.WriteFile(t, filepath.Join(src, "etc/hostname"), "src\n", 0o640)
	os.Chown(filepath.Join(src, "etc/hostname"), 1000, 1001)
	os.Link(filepath.Join(src, "etc/hostname"), filepath.Join(src, "hard"))
	os.Symlink("../etc/hostname", filepath.Join(src, "etc/link"))
	os.Lchown(filepath.Join(src, "etc/link"), 7, 8)
	unix.Mkfifo(filepath.Join(src, "fifo"), 0o600)
	unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	unix.Setxattr(filepath.Join(src, "etc/hostname"), "user.test", []byte("v"), 0)
	os.Chmod(src, 0o751)
	mtime := unixTime(1_600_000_000)
	os.Chtimes(filepath.Join(src, "etc/hostname"), mtime, mtime)

	if err := p.Clone(context.Background(), "src", "dst", true); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	clearImmutable(t, dst)
	img, err := p.Get("dst")
	if err != nil {
		t.Fatal(err)
	}
	if img.Type != TypeDirectory || !img.ReadOnly || !immutablePath(dst) {
		t.Errorf("read-only clone %+v: want an immutable directory", img)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dst, "etc/hostname"), &a)
	unix.Lstat(filepath.Join(dst, "hard"), &b)
	if a.Ino != b.Ino || a.Uid != 1000 || a.Gid != 1001 || a.Mode&0o777 != 0o640 || a.Mtim.Sec != 1_600_000_000 {
		t.Errorf("file attributes not kept: %+v (hard link ino %d)", a, b.Ino)
	}
	if v := make([]byte, 8); true {
		n, err := unix.Getxattr(filepath.Join(dst, "etc/hostname"), "user.test", v)
		if err != nil || string(v[:n]) != "v" {
			t.Errorf("xattr not copied: %q, %v", v[:n], err)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dst, "etc/link")); l != "../etc/hostname" {
		t.Errorf("symlink %q", l)
	}
	unix.Lstat(filepath.Join(dst, "etc/link"), &a)
	if a.Uid != 7 || a.Gid != 8 {
		t.Errorf("symlink owner %d:%d", a.Uid, a.Gid)
	}
	unix.Lstat(filepath.Join(dst, "null"), &a)
	if a.Mode&unix.S_IFMT != unix.S_IFCHR || a.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node not copied: %+v", a)
	}
	unix.Lstat(filepath.Join(dst, "fifo"), &a)
	if a.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo not copied")
	}
	unix.Stat(dst, &a)
	if a.Mode&0o7777 != 0o751 {
		t.Errorf("top directory mode %o", a.Mode&0o7777)
	}

	if err := p.Clone(context.Background(), "src", "dst", false); !errors.Is(err, unix.EEXIST) {
		t.Errorf("clone onto an existing name = %v, want EEXIST", err)
	}
	if err := p.Clone(context.Background(), "src", "..", false); !errors.Is(err, ErrInvalidName) {
		t.Errorf("clone to .. = %v", err)
	}
}

func TestCloneRaw(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	filetest.WriteFile(t, filepath.Join(dir, "disk.raw"), "content", 0o600)
	filetest.WriteFile(t, filepath.Join(dir, "disk.roothash"), "hash", 0o644)
	for name, mode := range map[string]os.FileMode{"ro": 0o444, "rw": 0o644} {
		if err := p.Clone(context.Background(), "disk", name, name == "ro"); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, name+".raw"))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, st, err, mode)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name+".raw")); string(b) != "content" {
			t.Errorf("%s: content %q", name, b)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name+".roothash")); string(b) != "hash" {
			t.Errorf("%s: roothash %q", name, b)
		}
	}
	backing := filepath.Join(t.TempDir(), "b.img")
	run(t, "truncate", "-s", "1M", backing)
	dev := loopDevice(t, backing)
	var st unix.Stat_t
	unix.Stat(dev, &st)
	unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(st.Rdev))
	if err := p.Clone(context.Background(), "blk", "blk2", false); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("clone of a block device = %v, want EOPNOTSUPP", err)
	}
}

// cancelAfter is a context that reports cancellation from its n-th check on,
// to stop an operation midway without timing.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestCloneCancelled(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	for i := range 20 {
		filetest.WriteFile(t, filepath.Join(dir, "src", "f", string(rune('a'+i))), "x", 0o644)
	}
	for _, n := range []int{0, 5, 15} {
		ctx := &cancelAfter{Context: context.Background(), n: n}
		if err := p.Clone(ctx, "src", "dst", false); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d checks: %v", n, err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("cancelled after %d checks: pool holds %v, want only src", n, entries)
		}
	}
}

func TestRemoveCancelled(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	for i := range 20 {
		filetest.WriteFile(t, filepath.Join(dir, "victim", string(rune('a'+i))), "x", 0o644)
	}
	ctx := &cancelAfter{Context: context.Background(), n: 5}
	if err := p.Remove(ctx, "victim"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove = %v, want cancelled", err)
	}
	if _, err := p.Get("victim"); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("half-removed image still listed under its name: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, removingPrefix+"*"))
	if len(left) != 1 {
		t.Fatalf("leftover of the stopped removal: %v", left)
	}
	// A removal in progress (its tree locked) is not touched by Clean; a
	// stopped one is finished.
	lock, err := p.lockImagePath(left[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Clean(context.Background(), CleanAll); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left[0]); err != nil {
		t.Errorf("Clean removed a tree whose removal is in progress: %v", err)
	}
	lock.release()
	if _, err := p.Clean(context.Background(), CleanAll); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("after Clean: %v", entries)
	}
}

func TestClean(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	mkdirs(t, filepath.Join(dir, "a"), filepath.Join(dir, ".h1"), filepath.Join(dir, "busy"))
	filetest.WriteFile(t, filepath.Join(dir, ".h2.raw"), "12345", 0o644)
	lock, err := p.lockImagePath(filepath.Join(dir, "busy"))
	if err != nil {
		t.Fatal(err)
	}
	removed, err := p.Clean(context.Background(), CleanHidden)
	if err != nil {
		t.Fatal(err)
	}
	if got := removedNames(removed); !equalStrings(got, []string{".h1", ".h2"}) {
		t.Errorf("Clean(hidden) removed %v", got)
	}
	if r := removed[1]; r.UsageExclusive == 0 || r.UsageExclusive == ^uint64(0) {
		t.Errorf("raw image's exclusive usage %d not reported", r.UsageExclusive)
	}
	removed, err = p.Clean(context.Background(), CleanAll)
	if err != nil {
		t.Fatal(err)
	}
	if got := removedNames(removed); !equalStrings(got, []string{"a"}) {
		t.Errorf("Clean(all) removed %v, want [a] (busy is in use)", got)
	}
	lock.release()
	if removed, _ = p.Clean(context.Background(), CleanAll); !equalStrings(removedNames(removed), []string{"busy"}) {
		t.Errorf("after unlock: %v", removed)
	}
	if _, err := p.Clean(context.Background(), "some"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown mode: %v", err)
	}
}

func removedNames(r []Removed) []string {
	var out []string
	for _, x := range r {
		out = append(out, x.Name)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Off a reflinking file system a raw clone keeps the source's holes.
func TestCloneRawKeepsHoles(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	src := filepath.Join(dir, "sparse.raw")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("middle"), 64<<20)
	f.Truncate(128 << 20)
	f.Close()
	if err := p.Clone(context.Background(), "sparse", "copy", false); err != nil {
		t.Fatal(err)
	}
	var a, b unix.Stat_t
	unix.Stat(src, &a)
	unix.Stat(filepath.Join(dir, "copy.raw"), &b)
	if b.Size != a.Size || b.Blocks > a.Blocks+64 {
		t.Errorf("copy: size %d, %d blocks; source: size %d, %d blocks", b.Size, b.Blocks, a.Size, a.Blocks)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "copy.raw"))
	if string(got[:4]) != "head" || string(got[64<<20:64<<20+6]) != "middle" || got[100<<20] != 0 {
		t.Errorf("copy content differs")
	}
}
