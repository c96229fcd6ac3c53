package quicksys

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteRenameReadUnlink(t *testing.T) {
	dir := t.TempDir()
	tmp, final := filepath.Join(dir, ".#m"), filepath.Join(dir, "m")
	fd, err := Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Write(fd, []byte("NAME=m\n")); err != nil || n != 7 {
		t.Fatalf("write: %d %v", n, err)
	}
	if err := Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(final, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file still there after rename: %v", err)
	}
	fd, err = Open(final, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := Read(fd, buf)
	Close(fd)
	if err != nil || string(buf[:n]) != "NAME=m\n" {
		t.Fatalf("read back %q, %v; want the renamed file's content", buf[:n], err)
	}
	if err := Unlink(final); err != nil {
		t.Fatal(err)
	}
	if err := Unlink(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second unlink: %v, want ENOENT", err)
	}
}

func TestErrorsAreErrnos(t *testing.T) {
	if _, err := Open("/nonexistent/x", unix.O_RDONLY|unix.O_CLOEXEC, 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open of a missing file: %v, want ENOENT", err)
	}
	if _, err := Open("a\x00b", unix.O_RDONLY, 0); err == nil {
		t.Error("open of a path with NUL succeeded")
	}
	if err := Close(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("close(-1): %v, want EBADF", err)
	}
	if err := Rename("/nonexistent/a", "/nonexistent/b"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rename of a missing file: %v, want ENOENT", err)
	}
}

func TestReadlinkMatchesOS(t *testing.T) {
	want, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Skip("no user namespace links:", err)
	}
	buf := make([]byte, 64)
	n, err := Readlink("/proc/self/ns/user", buf)
	if err != nil || string(buf[:n]) != want || !strings.HasPrefix(want, "user:[") {
		t.Fatalf("Readlink = %q, %v; os.Readlink = %q", buf[:n], err, want)
	}
	if n, err := Readlink("/proc/self/ns/user", buf[:3]); err != nil || n != 3 {
		t.Fatalf("short buffer: %d, %v; want it filled", n, err)
	}
}

func TestPidfdDupFstat(t *testing.T) {
	fd, err := PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skip("no pidfd_open:", err)
	}
	defer Close(fd)
	dup, err := DupCloexec(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(dup)
	if dup <= 2 || dup == fd {
		t.Fatalf("dup = %d of %d; want a new descriptor above stdio", dup, fd)
	}
	flags, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("dup flags %#x, %v: want FD_CLOEXEC", flags, err)
	}
	var a, b unix.Stat_t
	if err := Fstat(fd, &a); err != nil {
		t.Fatal(err)
	}
	if err := Fstat(dup, &b); err != nil || a.Ino != b.Ino || a.Dev != b.Dev {
		t.Fatalf("fstat of the dup: %+v, %v; want the same file as the original", b, err)
	}
	if _, err := PidfdOpen(-5, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("pidfd_open(-5): %v, want EINVAL", err)
	}
	if err := Fstat(-1, &a); !errors.Is(err, unix.EBADF) {
		t.Errorf("fstat(-1): %v, want EBADF", err)
	}
}

func TestReadableTellsAnExitedChild(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		cmd.Process.Kill()
		t.Skip("no pidfd_open:", err)
	}
	defer Close(fd)
	if r, err := Readable(fd); err != nil || r {
		t.Fatalf("running child: readable %v, %v; want false", r, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if r, err := Readable(fd); err != nil || !r {
		t.Fatalf("reaped child: readable %v, %v; want true", r, err)
	}
}

func TestPidfdID(t *testing.T) {
	if PidfdID(-1) != 0 {
		t.Error("an id for fd -1")
	}
	if !PidfdInodeSupported() {
		t.Skip("kernel without pidfs: pidfds have no ids of their own")
	}
	a, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	b, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(b)
	if PidfdID(a) == 0 || PidfdID(a) != PidfdID(b) {
		t.Errorf("two pidfds of one process: ids %d and %d", PidfdID(a), PidfdID(b))
	}
}

// The calls that take paths convert them on the stack: a registration makes
// half a dozen of them, and each used to allocate its C string.
func TestPathCallsDoNotAllocate(t *testing.T) {
	dir := t.TempDir()
	file, other, link := filepath.Join(dir, "m"), filepath.Join(dir, "n"), filepath.Join(dir, "unit:x")
	var buf [64]byte
	allocs := testing.AllocsPerRun(100, func() {
		fd, err := Open(file, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		Close(fd)
		if err := Rename(file, other); err != nil {
			t.Fatal(err)
		}
		if err := Symlink("n", link); err != nil {
			t.Fatal(err)
		}
		if _, err := Readlink(link, buf[:]); err != nil {
			t.Fatal(err)
		}
		Unlink(link)
		Unlink(other)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round of Open, Rename, Symlink, Readlink and Unlink, want 0", allocs)
	}
}

// A path too long for the stack buffer still works, and one with a NUL inside
// is refused, as the heap conversion refuses it.
func TestPathBounds(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("d", 200), strings.Repeat("f", 200))
	if err := os.MkdirAll(filepath.Dir(long), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{long[:len(dir)+1+200+1+(255-len(dir)-202)], long} {
		fd, err := Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatalf("open %d-byte path: %v", len(p), err)
		}
		Close(fd)
		if err := Unlink(p); err != nil {
			t.Fatalf("unlink %d-byte path: %v", len(p), err)
		}
	}
	if _, err := Open(dir+"/a\x00b", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != unix.EINVAL {
		t.Fatalf("path with a NUL: %v, want EINVAL", err)
	}
	if err := Unlink(dir + "/" + strings.Repeat("x", 300) + "\x00"); err != unix.EINVAL {
		t.Fatalf("long path with a NUL: %v, want EINVAL", err)
	}
}

// WriteNoWait writes what a pipe has room for and refuses with EAGAIN, not a
// wait, once it is full.
func TestWriteNoWaitOnAFullPipe(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if n, err := WriteNoWait(p[1], []byte("line\n")); n != 5 || err != nil {
		t.Fatalf("write with room: %d %v", n, err)
	}
	buf := make([]byte, 8)
	if n, err := Read(p[0], buf); n != 5 || string(buf[:n]) != "line\n" || err != nil {
		t.Fatalf("read back %q %v", buf[:n], err)
	}
	capacity, err := unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, capacity+4096)
	n, err := WriteNoWait(p[1], big)
	if err != nil || n <= 0 || n > capacity {
		t.Fatalf("write of more than the capacity: %d %v, want a short write", n, err)
	}
	if n, err := WriteNoWait(p[1], big); n != 0 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("write to a full pipe: %d %v, want EAGAIN", n, err)
	}
	if n, err := WriteNoWait(p[1], nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d %v", n, err)
	}
}
