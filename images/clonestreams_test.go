package images

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/copystreams"
	"github.com/machined-go/machined/internal/filetest"
)

// A tree of large files (which background streams copy on a machine of two
// CPUs or more) clones whole: content, owners, set-id and read-only modes,
// extended attributes and times (which a write after them would change),
// beside small files the walk copies itself.
func TestCloneLargeFiles(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	src := filepath.Join(dir, "src")
	modes := []uint32{0o4755, 0o2750, 0o400, 0o640}
	for i := range 8 {
		sub := filepath.Join(src, "d"+strconv.Itoa(i%3))
		big := filepath.Join(sub, "big"+strconv.Itoa(i))
		content := bytes.Repeat([]byte{byte(i + 1)}, copystreams.MinSize+i*(300<<10))
		filetest.WriteFile(t, big, string(content), 0o644)
		os.Chown(big, 1000+i, 2000+i)
		unix.Chmod(big, modes[i%len(modes)])
		unix.Setxattr(big, "user.n", []byte(strconv.Itoa(i)), 0)
		filetest.WriteFile(t, filepath.Join(sub, "small"+strconv.Itoa(i)), "small", 0o600)
		ts := unix.NsecToTimespec(int64(1_600_000_000+i) * 1e9)
		unix.UtimesNanoAt(unix.AT_FDCWD, big, []unix.Timespec{ts, ts}, 0)
	}
	if err := p.Clone(context.Background(), "src", "dst", false); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		rel := filepath.Join("d"+strconv.Itoa(i%3), "big"+strconv.Itoa(i))
		want, _ := os.ReadFile(filepath.Join(src, rel))
		got, err := os.ReadFile(filepath.Join(dir, "dst", rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", rel, len(got), err, len(want))
			continue
		}
		var st unix.Stat_t
		unix.Lstat(filepath.Join(dir, "dst", rel), &st)
		if st.Mode&0o7777 != modes[i%len(modes)] || st.Uid != uint32(1000+i) || st.Gid != uint32(2000+i) || st.Mtim.Sec != int64(1_600_000_000+i) {
			t.Errorf("%s: mode %o owner %d:%d mtime %d, want %o %d:%d %d", rel, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec,
				modes[i%len(modes)], 1000+i, 2000+i, 1_600_000_000+i)
		}
		v := make([]byte, 8)
		if n, err := unix.Getxattr(filepath.Join(dir, "dst", rel), "user.n", v); err != nil || string(v[:n]) != strconv.Itoa(i) {
			t.Errorf("%s: xattr %q, %v", rel, v[:max(n, 0)], err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".#*")); len(leftovers) != 0 {
		t.Errorf("temporary copies left: %v", leftovers)
	}
}

// A large file that cannot be written (past the file size limit: EFBIG) fails
// the clone with that error, while the walk's own small files succeed; the
// new name never appears and no temporary copy is left.
func TestCloneLargeFileFailure(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p, _ := testPool(t, dir)
	for i := range 200 {
		filetest.WriteFile(t, filepath.Join(dir, "src", "d", "small"+strconv.Itoa(i)), "small", 0o644)
	}
	filetest.WriteFile(t, filepath.Join(dir, "src", "big"), string(bytes.Repeat([]byte("b"), 3<<20)), 0o644)
	var old unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_FSIZE, &old)
	// Beyond the limit a write fails with EFBIG: Go ignores SIGXFSZ.
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1 << 20, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	err := p.Clone(context.Background(), "src", "dst", false)
	unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("clone of a file beyond the size limit: %v, want EFBIG", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("failed clone left %v in the pool, want only src", entries)
	}
}
