package containerfs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

// makeTree builds a tree of every kind of entry: directories (one read-only
// with children), regular files of several sizes and modes, a hard link, a
// symlink, a FIFO; owners varied when we are root, times set apart from now.
func makeTree(t *testing.T, top string, files int) {
	t.Helper()
	root := os.Geteuid() == 0
	for i := range files {
		dir := filepath.Join(top, "d"+strconv.Itoa(i%5), "e"+strconv.Itoa(i%3))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		content := bytes.Repeat([]byte{byte(i)}, (i*7919)%(256<<10))
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if root {
			os.Lchown(p, 1000+i%7, 2000+i%5)
		}
		unix.Chmod(p, []uint32{0o600, 0o644, 0o755, 0o4755, 0o400}[i%5])
	}
	os.MkdirAll(top+"/ro/inner", 0o755)
	os.WriteFile(top+"/ro/inner/f", []byte("ro"), 0o644)
	os.Link(top+"/d0/e0/f0", top+"/ro/hard")
	os.Symlink("../d0/e0/f0", top+"/ro/link")
	unix.Mkfifo(top+"/ro/fifo", 0o640)
	os.Mkdir(top+"/empty", 0o711)
	os.Chmod(top+"/ro", 0o555)
	// Times last, deepest first, so that making children does not touch them.
	var paths []string
	filepath.WalkDir(top, func(p string, _ fs.DirEntry, _ error) error { paths = append(paths, p); return nil })
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(int64(1_500_000_000_123_456_789 + i*1_000_000_007))
		unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// sameTree checks that dst holds what src does: every entry of the same kind,
// mode, owner (when owners are kept), modification time and content.
func sameTree(t *testing.T, src, dst string, owners bool) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if a.Mode != b.Mode {
			t.Errorf("%s: mode %o, want %o", rel, b.Mode, a.Mode)
		}
		if owners && (a.Uid != b.Uid || a.Gid != b.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, b.Uid, b.Gid, a.Uid, a.Gid)
		}
		if a.Mtim != b.Mtim {
			t.Errorf("%s: mtime %v, want %v", rel, b.Mtim, a.Mtim)
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				t.Errorf("%s: %d bytes differ from the source's %d", rel, len(y), len(x))
			}
		case unix.S_IFLNK:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: link to %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d entries compared", n)
	}
}

// A tree of every kind of entry is copied whole: kinds, modes (set-id bits
// and read-only directories included), owners, times (directories' after
// their children), contents, hard links.
func TestCopyTreeComplete(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src+"/top", 300)
	os.Mkdir(src+"/top/links", 0o755)
	os.WriteFile(src+"/top/links/0", bytes.Repeat([]byte("l"), 1<<20), 0o644)
	for i := 1; i < 16; i++ {
		os.Link(src+"/top/links/0", src+"/top/links/"+strconv.Itoa(i))
	}
	root := os.Geteuid() == 0
	if err := Copy(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{Own: Ownership{Chown: root}}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src+"/top", dst+"/top", root)
	if inode(t, dst+"/top/d0/e0/f0") != inode(t, dst+"/top/ro/hard") {
		t.Error("hard link not kept")
	}
	for i := 1; i < 16; i++ {
		if inode(t, dst+"/top/links/0") != inode(t, dst+"/top/links/"+strconv.Itoa(i)) {
			t.Errorf("name %d of a file with 16 is a file of its own", i)
		}
	}
	noTemp(t, dst)
}

// A copy cancelled part way stops at the next entry: the error is the
// cancellation, and nothing is left under the final name or a temporary one.
func TestCopyTreeCancelledPartWay(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src+"/top", 400)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	copied := 0
	fileCopied = func() {
		if copied++; copied == 50 {
			cancel()
		}
	}
	defer func() { fileCopied = nil }()
	err := Copy(ctx, side(t, src+"/top"), side(t, dst+"/top"), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if copied != 50 {
		t.Errorf("%d files copied after the cancellation at the 50th", copied-50)
	}
	if _, err := os.Lstat(dst + "/top"); err == nil {
		t.Error("cancelled copy left its tree under the final name")
	}
	noTemp(t, dst)
}

// One file the source identity may not read fails the copy: the error says
// so, and nothing is left under the final name or a temporary one.
func TestCopyTreeFailureLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as nobody")
	}
	src, dst := t.TempDir(), t.TempDir()
	os.Chmod(src, 0o755)
	makeTree(t, src+"/top", 60)
	// Everything readable but one file deep in the tree.
	filepath.WalkDir(src+"/top", func(p string, d fs.DirEntry, _ error) error {
		if d.Type().IsRegular() {
			var st unix.Stat_t
			unix.Stat(p, &st)
			unix.Chmod(p, st.Mode&0o7777|0o004)
		}
		return nil
	})
	os.WriteFile(src+"/top/d3/e1/secret", []byte("x"), 0o600)
	nobody, err := proc.StartOwnerThread(proc.Owner{UID: 65534, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	defer nobody.Close()
	from := side(t, src+"/top")
	from.As = nobody
	err = Copy(context.Background(), from, side(t, dst+"/top"), Options{})
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("copy with a file nobody cannot read: %v, want EACCES", err)
	}
	if _, err := os.Lstat(dst + "/top"); err == nil {
		t.Error("failed copy left its tree under the final name")
	}
	noTemp(t, dst)
}

// A copy merged into an existing directory that fails part way keeps what
// was there, and leaves no temporary entry in any directory it merged into.
func TestCopyMergeFailureLeavesNoTemp(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src+"/top", 40)
	os.Chmod(src+"/top/ro", 0o755)
	os.MkdirAll(dst+"/top/d0/e2", 0o755)
	os.WriteFile(dst+"/top/d0/e2/f5", []byte("mine"), 0o644) // EEXIST without Replace
	err := Copy(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{})
	if !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("merge onto an existing file: %v, want EEXIST", err)
	}
	if b, _ := os.ReadFile(dst + "/top/d0/e2/f5"); string(b) != "mine" {
		t.Errorf("existing file now holds %q", b)
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, _ error) error {
		if d != nil && d.IsDir() {
			noTemp(t, p)
		}
		return nil
	})
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
