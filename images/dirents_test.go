package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/machined-go/machined/internal/filetest"
	"golang.org/x/sys/unix"
)

// readNames gives the names os.ReadDir gives, also for a directory that takes
// several getdents calls.
func TestReadNamesMatchesReadDir(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 100)
	for i := range 1000 { // about 120 KiB of records: four reads at least
		mkdirs(t, filepath.Join(dir, fmt.Sprintf("%s-%04d", long, i)))
	}
	filetest.WriteFile(t, filepath.Join(dir, "file.raw"), "", 0o644)
	os.Symlink("nowhere", filepath.Join(dir, "dangling"))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := readNames(fd)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.Name())
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("readNames: %d names, os.ReadDir %d; first %q / %q", len(got), len(want), got[:min(3, len(got))], want[:3])
	}
}

// An entry's path is what filepath.Join makes of the directory and its name,
// however the directory was written.
func TestPathOfIsJoin(t *testing.T) {
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "img"), filepath.Join(dir, "other"))
	for _, d := range []string{dir, dir + "/", dir + "//.", "/"} {
		sd, err := readSearchDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range sd.files {
			if got, want := sd.pathOf(i), filepath.Join(d, f); got != want {
				t.Errorf("%q: path of %q is %q, want %q", d, f, got, want)
			}
		}
		sd.close()
	}
}

// find finds every entry, and nothing between them.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "b"), filepath.Join(dir, "d"), filepath.Join(dir, "d.raw"))
	sd, err := readSearchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.close()
	for _, c := range []struct {
		name, suffix string
		found        bool
	}{{"b", "", true}, {"d", "", true}, {"d", ".raw", true}, {"a", "", false}, {"c", "", false}, {"d", ".v", false}, {"e", "", false}, {"b", ".raw", false}} {
		i, ok := sd.find(c.name, c.suffix)
		if ok != c.found || ok && sd.files[i] != c.name+c.suffix {
			t.Errorf("find(%q, %q) = %d, %v", c.name, c.suffix, i, ok)
		}
	}
}

// statxAt takes names up to the kernel's 255 bytes and refuses longer ones
// and names with a NUL, which the kernel would cut short.
func TestStatxAtBounds(t *testing.T) {
	dir := t.TempDir()
	longest := strings.Repeat("x", 255)
	mkdirs(t, filepath.Join(dir, longest))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var stx unix.Statx_t
	if err := statxAt(fd, longest, &stx); err != nil || stx.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("255-byte name: %v, mode %o", err, stx.Mode)
	}
	if err := statxAt(fd, longest+"x", &stx); !errors.Is(err, unix.ENAMETOOLONG) {
		t.Errorf("256-byte name: %v", err)
	}
	if err := statxAt(fd, longest[:3]+"\x00", &stx); err == nil {
		t.Errorf("a name with a NUL was statted")
	}
	if err := statxAt(fd, "absent", &stx); !errors.Is(err, unix.ENOENT) {
		t.Errorf("absent entry: %v", err)
	}
}
