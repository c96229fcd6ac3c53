package images

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

// The ioctl numbers encode the structure sizes: a wrong layout is a wrong ioctl.
func TestBtrfsStructSizes(t *testing.T) {
	for name, got := range map[string]uintptr{
		"btrfs_ioctl_vol_args":             unsafe.Sizeof(btrfsVolArgs{}),
		"btrfs_ioctl_vol_args_v2":          unsafe.Sizeof(btrfsVolArgsV2{}),
		"btrfs_ioctl_search_args":          unsafe.Sizeof(btrfsSearchArgs{}),
		"btrfs_ioctl_get_subvol_info_args": unsafe.Sizeof(btrfsSubvolInfo{}),
		"btrfs_ioctl_qgroup_limit_args":    unsafe.Sizeof(btrfsQgroupLimitArgs{}),
		"btrfs_ioctl_quota_rescan_args":    unsafe.Sizeof(btrfsQuotaRescanArgs{}),
		"btrfs_ioctl_search_key":           unsafe.Sizeof(btrfsSearchKey{}),
	} {
		want := map[string]uintptr{
			"btrfs_ioctl_vol_args": 4096, "btrfs_ioctl_vol_args_v2": 4096, "btrfs_ioctl_search_args": 4096,
			"btrfs_ioctl_get_subvol_info_args": 504, "btrfs_ioctl_qgroup_limit_args": 48,
			"btrfs_ioctl_quota_rescan_args": 64, "btrfs_ioctl_search_key": 104,
		}[name]
		if got != want {
			t.Errorf("sizeof(%s) = %d, want %d", name, got, want)
		}
	}
	if btrfsIocSnapCreateV2 != 0x50009417 || btrfsIocGetSubvolInfo != 0x81f8943c || btrfsIocQgroupLimit != 0x8030942b {
		t.Errorf("ioctl numbers: %#x %#x %#x", btrfsIocSnapCreateV2, btrfsIocGetSubvolInfo, btrfsIocQgroupLimit)
	}
}

// btrfsPool is a pool on a fresh btrfs (quota enabled), the pool directory a
// subvolume of its own.
func btrfsPool(t *testing.T) (*Pool, string) {
	mnt := newBtrfs(t, true)
	pool := filepath.Join(mnt, "machines")
	run(t, "btrfs", "subvolume", "create", pool)
	p, _ := testPool(t, pool)
	return p, pool
}

func subvolFlags(t *testing.T, path string) (ro bool) {
	t.Helper()
	out := run(t, "btrfs", "property", "get", "-ts", path, "ro")
	return strings.TrimSpace(out) == "ro=true"
}

func TestSubvolumeImage(t *testing.T) {
	p, pool := btrfsPool(t)
	sv := filepath.Join(pool, "sv")
	run(t, "btrfs", "subvolume", "create", sv)
	filetest.WriteFile(t, filepath.Join(sv, "etc/os-release"), "ID=test\n", 0o644)
	mkdirs(t, filepath.Join(pool, "plain"))
	// Accounting follows transaction commits: commit, then count.
	run(t, "btrfs", "filesystem", "sync", pool)
	run(t, "btrfs", "quota", "rescan", "-w", pool)

	img, err := p.Get("sv")
	if err != nil {
		t.Fatal(err)
	}
	if img.Type != TypeSubvolume || img.ReadOnly || img.CrTime == 0 || img.MTime == 0 {
		t.Errorf("subvolume %+v: want type subvolume, writable, both times", img)
	}
	if img.Usage == math.MaxUint64 || img.UsageExclusive == math.MaxUint64 || img.Usage == 0 {
		t.Errorf("subvolume with quota: usage %d/%d, want known", img.Usage, img.UsageExclusive)
	}
	if img.Limit != math.MaxUint64 || img.LimitExclusive != math.MaxUint64 {
		t.Errorf("no limit set: %d/%d, want unlimited", img.Limit, img.LimitExclusive)
	}
	if plain, _ := p.Get("plain"); plain.Type != TypeDirectory || plain.Usage != math.MaxUint64 {
		t.Errorf("plain directory on btrfs: %+v", plain)
	}

	// Read-only: the subvolume flag, both ways.
	if err := p.MarkReadOnly("sv", true); err != nil {
		t.Fatal(err)
	}
	if !subvolFlags(t, sv) {
		t.Errorf("MarkReadOnly(true) left the subvolume writable")
	}
	if img, _ = p.Get("sv"); !img.ReadOnly {
		t.Errorf("read-only subvolume not reported read-only")
	}
	// A read-only subvolume can still be renamed (its parent is writable).
	if err := p.Rename("sv", "sv2"); err != nil {
		t.Fatalf("renaming a read-only subvolume: %v", err)
	}
	if err := p.Rename("sv2", "sv"); err != nil {
		t.Fatal(err)
	}
	if err := p.MarkReadOnly("sv", false); err != nil {
		t.Fatal(err)
	}
	if subvolFlags(t, sv) {
		t.Errorf("MarkReadOnly(false) left the subvolume read-only")
	}

	// Limits: on the subvolume's subtree qgroup, read back as Limit.
	if err := p.SetLimit("sv", 100<<20); err != nil {
		t.Fatal(err)
	}
	if img, _ = p.Get("sv"); img.Limit != 100<<20 {
		t.Errorf("after SetLimit: limit %d, want %d", img.Limit, 100<<20)
	}
	out := run(t, "btrfs", "qgroup", "show", "-re", "--raw", pool)
	if !strings.Contains(out, "104857600") {
		t.Errorf("qgroup limit not on the file system:\n%s", out)
	}
	if err := p.SetLimit("sv", math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if img, _ = p.Get("sv"); img.Limit != math.MaxUint64 {
		t.Errorf("after lifting: limit %d", img.Limit)
	}
	if err := p.SetLimit("plain", 1<<20); !errorsIs(err, unix.EOPNOTSUPP) {
		t.Errorf("SetLimit on a plain directory = %v, want EOPNOTSUPP", err)
	}
}

// Limits need btrfs quota: without it SetLimit says so (EOPNOTSUPP) and sizes
// are unknown.
func TestSetLimitQuotaOff(t *testing.T) {
	mnt := newBtrfs(t, false)
	run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "sv"))
	p, _ := testPool(t, mnt)
	if err := p.SetLimit("sv", 1<<20); !errorsIs(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "quota is not enabled") {
		t.Errorf("SetLimit with quota off = %v, want EOPNOTSUPP naming quota", err)
	}
	if img, _ := p.Get("sv"); img.Usage != math.MaxUint64 || img.Limit != math.MaxUint64 {
		t.Errorf("sizes with quota off: %+v", img)
	}
}

func TestPoolLimit(t *testing.T) {
	p, _ := btrfsPool(t)
	if err := p.SetPoolLimit(200 << 20); err != nil {
		t.Fatal(err)
	}
	usage, limit := p.PoolUsage()
	if limit != 200<<20 || usage == math.MaxUint64 {
		t.Errorf("PoolUsage = %d, %d; want a usage and the 200 MiB limit", usage, limit)
	}

	// A pool directory that does not exist yet is made a subvolume.
	mnt := newBtrfs(t, false)
	fresh, _ := testPool(t, filepath.Join(mnt, "new", "machines"))
	if err := fresh.SetPoolLimit(50 << 20); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(mnt, "new", "machines"), &st)
	if st.Ino != btrfsFirstFreeObjectID {
		t.Errorf("new pool directory is not a subvolume")
	}
	if _, limit := fresh.PoolUsage(); limit != 50<<20 {
		t.Errorf("fresh pool limit %d", limit)
	}

	// Off btrfs: not supported, and nothing known.
	ext, _ := testPool(t, t.TempDir())
	if err := ext.SetPoolLimit(1 << 20); !errorsIs(err, unix.EOPNOTSUPP) {
		t.Errorf("SetPoolLimit off btrfs = %v, want EOPNOTSUPP", err)
	}
	if u, l := ext.PoolUsage(); u != math.MaxUint64 || l != math.MaxUint64 {
		t.Errorf("PoolUsage off btrfs = %d, %d", u, l)
	}
}

func TestCloneSubvolumeSnapshot(t *testing.T) {
	p, pool := btrfsPool(t)
	sv := filepath.Join(pool, "src")
	run(t, "btrfs", "subvolume", "create", sv)
	filetest.WriteFile(t, filepath.Join(sv, "etc/hostname"), "src\n", 0o644)
	filetest.WriteFile(t, filepath.Join(p.cfg.NspawnDirs[0], "src.nspawn"), "[Exec]\n", 0o644)

	if err := p.Clone(context.Background(), "src", "ro-copy", true); err != nil {
		t.Fatal(err)
	}
	if err := p.Clone(context.Background(), "src", "rw-copy", false); err != nil {
		t.Fatal(err)
	}
	for name, ro := range map[string]bool{"ro-copy": true, "rw-copy": false} {
		img, err := p.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if img.Type != TypeSubvolume || img.ReadOnly != ro || subvolFlags(t, img.Path) != ro {
			t.Errorf("%s: %+v, want a subvolume, read-only=%v", name, img, ro)
		}
		if b, _ := os.ReadFile(filepath.Join(img.Path, "etc/hostname")); string(b) != "src\n" {
			t.Errorf("%s: content %q", name, b)
		}
		if _, err := os.Stat(filepath.Join(p.cfg.NspawnDirs[0], name+".nspawn")); err != nil {
			t.Errorf("%s: settings not cloned: %v", name, err)
		}
	}
	// The clone has a subtree qgroup of its own, ready for a limit.
	if err := p.SetLimit("rw-copy", 10<<20); err != nil {
		t.Errorf("SetLimit on the clone: %v", err)
	}

	// Removal: subvolume and its qgroups, read-only or not.
	info := subvolID(t, filepath.Join(pool, "ro-copy"))
	if err := p.Remove(context.Background(), "ro-copy"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(pool, "ro-copy")); !os.IsNotExist(err) {
		t.Errorf("removed clone still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.cfg.NspawnDirs[0], "ro-copy.nspawn")); !os.IsNotExist(err) {
		t.Errorf("settings of the removed clone still there")
	}
	out := run(t, "btrfs", "qgroup", "show", "--raw", pool)
	if strings.Contains(out, "255/"+info+" ") || strings.Contains(out, "255/"+info+"\n") {
		t.Errorf("subtree qgroup 255/%s of the removed clone left:\n%s", info, out)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(pool, ".#*")); len(leftovers) != 0 {
		t.Errorf("leftovers in the pool: %v", leftovers)
	}
}

func subvolID(t *testing.T, path string) string {
	t.Helper()
	for _, l := range strings.Split(run(t, "btrfs", "subvolume", "show", path), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "Subvolume" && f[1] == "ID:" {
			return f[2]
		}
	}
	t.Fatalf("no subvolume id for %s", path)
	return ""
}

// Nested subvolumes: removal destroys them too.
func TestRemoveNestedSubvolumes(t *testing.T) {
	p, pool := btrfsPool(t)
	outer := filepath.Join(pool, "outer")
	run(t, "btrfs", "subvolume", "create", outer)
	mkdirs(t, filepath.Join(outer, "a/b"))
	run(t, "btrfs", "subvolume", "create", filepath.Join(outer, "a/b/inner"))
	filetest.WriteFile(t, filepath.Join(outer, "a/b/inner/file"), "x", 0o644)
	if err := p.Remove(context.Background(), "outer"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(pool); len(entries) != 0 {
		t.Errorf("pool not empty after removal: %v", entries)
	}
}

// A plain directory cloned onto btrfs becomes a subvolume.
func TestCloneDirectoryOntoBtrfs(t *testing.T) {
	p, pool := btrfsPool(t)
	src := filepath.Join(pool, "dir")
	filetest.WriteFile(t, filepath.Join(src, "etc/os-release"), "ID=x\n", 0o644)
	if err := p.Clone(context.Background(), "dir", "copy", true); err != nil {
		t.Fatal(err)
	}
	img, err := p.Get("copy")
	if err != nil {
		t.Fatal(err)
	}
	if img.Type != TypeSubvolume || !img.ReadOnly {
		t.Errorf("clone %+v: want a read-only subvolume", img)
	}
}

// Nested subvolumes come along in a snapshot clone, with their contents.
func TestCloneNestedSubvolumes(t *testing.T) {
	p, pool := btrfsPool(t)
	outer := filepath.Join(pool, "outer")
	run(t, "btrfs", "subvolume", "create", outer)
	mkdirs(t, filepath.Join(outer, "var/lib"))
	run(t, "btrfs", "subvolume", "create", filepath.Join(outer, "var/lib/inner"))
	run(t, "btrfs", "subvolume", "create", filepath.Join(outer, "var/lib/inner/deeper"))
	filetest.WriteFile(t, filepath.Join(outer, "var/lib/inner/deeper/file"), "deep", 0o644)
	if err := p.Clone(context.Background(), "outer", "copy", true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(pool, "copy/var/lib/inner/deeper/file"))
	if err != nil || string(b) != "deep" {
		t.Fatalf("nested content: %q, %v", b, err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(pool, "copy/var/lib/inner/deeper"), &st)
	if st.Ino != btrfsFirstFreeObjectID {
		t.Errorf("nested subvolume copied as a plain directory")
	}
	if err := p.Remove(context.Background(), "copy"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pool, "copy")); !os.IsNotExist(err) {
		t.Errorf("clone with nested subvolumes not removed")
	}
}

// A clone into a pool that does not exist yet makes it (a subvolume on btrfs)
// without turning quota on: only a pool limit asks for that.
func TestCloneCreatesPoolWithoutQuota(t *testing.T) {
	mnt := newBtrfs(t, false)
	src := filepath.Join(mnt, "images")
	mkdirs(t, filepath.Join(src, "tree/etc"))
	pool := filepath.Join(mnt, "pool")
	p := NewPool(Config{SearchPath: []string{pool, src}, PoolPath: pool, LockDir: t.TempDir(), NspawnDirs: []string{t.TempDir()}})
	if err := p.Clone(context.Background(), "tree", "copy", false); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(pool, &st); err != nil || st.Ino != btrfsFirstFreeObjectID || st.Mode&0o777 != 0o700 {
		t.Errorf("pool %+v, %v: want a subvolume, mode 0700", st, err)
	}
	if out, err := execCommand("btrfs", "qgroup", "show", mnt).CombinedOutput(); err == nil {
		t.Errorf("quota enabled by a clone:\n%s", out)
	}
	if img, err := p.Get("copy"); err != nil || img.Type != TypeSubvolume {
		t.Errorf("clone %+v, %v", img, err)
	}
}
