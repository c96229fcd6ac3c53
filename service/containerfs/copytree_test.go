package containerfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/proc"
)

func asIs(t *testing.T) *proc.OwnerThread {
	t.Helper()
	th, err := proc.StartOwnerThread(proc.Owner{UID: uint32(os.Geteuid())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(th.Close)
	return th
}

func side(t *testing.T, path string) Side {
	t.Helper()
	dir, name, err := OpenParentOnHost(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(dir) })
	return Side{Dir: dir, Name: name, As: asIs(t)}
}

func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("left %s in %s", e.Name(), dir)
		}
	}
}

// A tree nested deeper than the bound fails with ELOOP, and the new tree is
// removed whole: nothing under its final name, nothing temporary.
func TestCopyDepthBound(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	deep := filepath.Join(src, "top", "1", "2", "3", "4")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "top", "1", "f"), []byte("x"), 0o644)
	err := Copy(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{MaxDepth: 3})
	if !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("copy of a tree 4 deep with a bound of 3: %v", err)
	}
	if _, err := os.Lstat(dst + "/top"); err == nil {
		t.Error("failed copy left its tree under the final name")
	}
	noTemp(t, dst)
	// At the bound it passes.
	if err := Copy(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{MaxDepth: 4}); err != nil {
		t.Fatal(err)
	}
}

// A context that has ended copies nothing.
func TestCopyCancelledContext(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	os.WriteFile(src+"/f", []byte("x"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Copy(ctx, side(t, src+"/f"), side(t, dst+"/f"), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if _, err := os.Lstat(dst + "/f"); err == nil {
		t.Error("cancelled copy wrote")
	}
	noTemp(t, dst)
}

// Ownership: kept, overridden, or left to the writer.
func TestCopyOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	src, dst := t.TempDir(), t.TempDir()
	os.WriteFile(src+"/f", []byte("x"), 0o755)
	os.Lchown(src+"/f", 1234, 5678)
	unix.Chmod(src+"/f", 0o4755) // after chown, which clears it
	os.Symlink("f", src+"/l")
	os.Lchown(src+"/l", 1234, 5678)
	for _, tc := range []struct {
		own      Ownership
		uid, gid uint32
	}{
		{Ownership{Chown: true}, 1234, 5678},
		{Ownership{Chown: true, Override: true, UID: 7, GID: 8}, 7, 8},
		{Ownership{}, 0, 0},
	} {
		os.RemoveAll(dst)
		os.Mkdir(dst, 0o755)
		for _, n := range []string{"f", "l"} {
			if err := Copy(context.Background(), side(t, src+"/"+n), side(t, dst+"/"+n), Options{Own: tc.own}); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			unix.Lstat(dst+"/"+n, &st)
			if st.Uid != tc.uid || st.Gid != tc.gid {
				t.Errorf("%+v: %s owned by %d:%d, want %d:%d", tc.own, n, st.Uid, st.Gid, tc.uid, tc.gid)
			}
			if n == "f" && st.Mode&0o7777 != 0o4755 {
				t.Errorf("%+v: mode %o, want 4755 (set after chown)", tc.own, st.Mode&0o7777)
			}
		}
	}
}

// removeAll empties directories larger than one read of entries.
func TestRemoveAll(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "t", "sub", "subsub"), 0o755)
	os.WriteFile(filepath.Join(dir, "t", "sub", "subsub", "f"), nil, 0o644)
	for i := range 1000 {
		os.WriteFile(filepath.Join(dir, "t", strings.Repeat("n", 100)+strconv.Itoa(i)), nil, 0o644)
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if err := removeAll(d, "t", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir + "/t"); err == nil {
		t.Fatal("tree still there")
	}
}

// user.* attributes are copied file by file: each copy gets exactly its
// source's names and values, none left over from a file copied before it
// (the copy reads every file's attributes into the same buffers), and the
// trusted.* ones stay behind.
func TestCopyUserXattrs(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	os.Mkdir(src+"/top", 0o755)
	attrs := map[string]map[string]string{
		"a": {"user.long": strings.Repeat("v", 1000), "user.both": "first"},
		"b": {"user.both": "2"},
		"c": {},
	}
	for name, xs := range attrs {
		p := src + "/top/" + name
		os.WriteFile(p, []byte(name), 0o644)
		for k, v := range xs {
			if err := unix.Setxattr(p, k, []byte(v), 0); err != nil {
				t.Skipf("no user xattrs here: %v", err)
			}
		}
	}
	if os.Geteuid() == 0 {
		unix.Setxattr(src+"/top/a", "trusted.x", []byte("y"), 0)
	}
	if err := Copy(context.Background(), side(t, src+"/top"), side(t, dst+"/top"), Options{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range attrs {
		p := dst + "/top/" + name
		buf := make([]byte, 4096)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, k := range strings.Split(string(buf[:n]), "\x00") {
			if k == "" {
				continue
			}
			vn, err := unix.Lgetxattr(p, k, buf)
			if err != nil {
				t.Fatal(err)
			}
			got[k] = string(buf[:vn])
		}
		if len(got) != len(want) {
			t.Errorf("%s: attributes %q, want %q", name, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}

// A file is copied up to the size it had when opened: one that grows while it
// is copied (a container appending to it) cannot make the copy endless. Files
// that claim no size, as those of /proc do, are copied to their end; both the
// in-kernel and the read/write paths keep the bound, and so does CopyAlone.
func TestCopyDataBoundedBySizeAtOpen(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "grows")
	if err := os.WriteFile(src, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	f, err := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("appended after the open")
	f.Close()

	copyOut := func(name string, run func(c *copier, in, out int) error, c *copier) string {
		t.Helper()
		out, err := unix.Open(filepath.Join(dir, name), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(out)
		if _, err := unix.Seek(in, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := run(c, in, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		c    *copier
		run  func(c *copier, in, out int) error
	}{
		{"in-kernel", &copier{ctx: ctx}, func(c *copier, in, out int) error { return c.stream(in, out, 10) }},
		{"alone", &copier{ctx: ctx, alone: true}, func(c *copier, in, out int) error { return c.stream(in, out, 10) }},
		{"read-write", &copier{ctx: ctx}, func(c *copier, in, out int) error { return c.readWrite(in, out, 10) }},
	} {
		if got := copyOut(tc.name, tc.run, tc.c); got != "0123456789" {
			t.Errorf("%s: copied %q, want the 10 bytes there were at the open", tc.name, got)
		}
	}

	status, err := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(status)
	var st unix.Stat_t
	if err := unix.Fstat(status, &st); err != nil || st.Size != 0 {
		t.Fatalf("/proc/self/status: size %d, %v; want a file that claims none", st.Size, err)
	}
	got := copyOut("status", func(c *copier, _, out int) error { return c.stream(status, out, st.Size) }, &copier{ctx: ctx})
	if !strings.Contains(got, "\nPid:") {
		t.Errorf("a file without a size copied as %q, want its content", got)
	}
}
