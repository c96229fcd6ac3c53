package images

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loopDevice attaches file to a new loop device, detached when the test ends.
func loopDevice(t testing.TB, file string, extra ...string) string {
	t.Helper()
	dev := strings.TrimSpace(run(t, "losetup", append(append([]string{"-f", "--show"}, extra...), file)...))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// newBtrfs makes a btrfs file system on a loop device, mounts it and returns the
// mount point; quota enabled when asked. Everything goes when the test ends.
func newBtrfs(t testing.TB, quota bool) string {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		t.Skip("mkfs.btrfs not installed (btrfs-progs)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	run(t, "truncate", "-s", "300M", img)
	run(t, "mkfs.btrfs", "-q", img)
	dev := loopDevice(t, img)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", dev, mnt)
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	if quota {
		run(t, "btrfs", "quota", "enable", mnt)
	}
	return mnt
}

// testPool is a pool over the given search directories (the first is the pool
// directory) with its lock and settings directories in a scratch directory.
func testPool(t testing.TB, search ...string) (*Pool, Config) {
	t.Helper()
	scratch := t.TempDir()
	cfg := Config{
		SearchPath: search,
		PoolPath:   search[0],
		LockDir:    filepath.Join(scratch, "locks"),
		NspawnDirs: []string{filepath.Join(scratch, "nspawn")},
	}
	if err := os.MkdirAll(cfg.NspawnDirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	return NewPool(cfg), cfg
}

func mkdirs(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// clearImmutable lets the test's temporary directory be removed.
func clearImmutable(t testing.TB, path string) {
	t.Cleanup(func() { _ = setImmutablePath(path, false) })
}

func names(imgs []Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Name)
	}
	return out
}

func byName(t testing.TB, imgs []Image, name string) Image {
	t.Helper()
	for _, i := range imgs {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("no image %q in %v", name, names(imgs))
	return Image{}
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func lookPath(name string) (string, error) { return exec.LookPath(name) }
