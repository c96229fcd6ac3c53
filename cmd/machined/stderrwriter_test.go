package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/quicksys"
)

// withoutFallback makes every write that goes through w's os.File fail, so a
// test sees whether a line took the raw path.
func withoutFallback(t *testing.T, w *stderrWriter) {
	t.Helper()
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	wr.Close()
	w.file = r // a read end: writing to it is EBADF
	t.Cleanup(func() { r.Close() })
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A regular file on a local file system takes the lines with raw writes (no
// trip through the runtime's blocking-syscall path), appended whole.
func TestStderrWriterLocalFileIsRaw(t *testing.T) {
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		f, err := os.CreateTemp(dir, "stderr")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w := newStderrWriter(f)
		if !w.localFile {
			var fs unix.Statfs_t
			unix.Fstatfs(int(f.Fd()), &fs)
			t.Skipf("%s is on file system 0x%x, not one of the local ones", dir, fs.Type)
		}
		withoutFallback(t, w)
		for i := range 3 {
			line := fmt.Sprintf("line %d\n", i)
			if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
				t.Fatalf("%s: write: %d, %v", dir, n, err)
			}
		}
		if got := readAll(t, f.Name()); got != "line 0\nline 1\nline 2\n" {
			t.Errorf("%s: file holds %q", dir, got)
		}
	}
}

// A pipe with room and a socket take a line without waiting, raw.
func TestStderrWriterPipeAndSocketAreRaw(t *testing.T) {
	r, wp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wp.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws, rs := os.NewFile(uintptr(fds[0]), "stream"), os.NewFile(uintptr(fds[1]), "peer")
	defer ws.Close()
	defer rs.Close()
	for _, c := range []struct {
		name string
		w    *os.File
		r    *os.File
	}{{"pipe", wp, r}, {"socket", ws, rs}} {
		w := newStderrWriter(c.w)
		withoutFallback(t, w)
		if n, err := w.Write([]byte("hello\n")); err != nil || n != 6 {
			t.Fatalf("%s: write: %d, %v", c.name, n, err)
		}
		buf := make([]byte, 16)
		n, _ := c.r.Read(buf)
		if string(buf[:n]) != "hello\n" {
			t.Errorf("%s: read %q", c.name, buf[:n])
		}
		if !w.noWait || w.localFile {
			t.Errorf("%s: noWait %v, localFile %v; want a writer that keeps trying RWF_NOWAIT", c.name, w.noWait, w.localFile)
		}
	}
}

// A full pipe does not fail the line: it waits through the os.File until the
// reader makes room, and the line arrives whole after what filled the pipe.
func TestStderrWriterFullPipeWaits(t *testing.T) {
	r, wp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wp.Close()
	filler := bytes.Repeat([]byte("#"), 4096)
	total := 0
	for {
		n, err := quicksys.WriteNoWait(int(wp.Fd()), filler)
		total += n
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	w := newStderrWriter(wp)
	line := "the line after a full pipe\n"
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte(line))
		done <- err
	}()
	got, err := io.ReadAll(io.LimitReader(r, int64(total+len(line))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write into a full pipe: %v", err)
	}
	if !strings.HasSuffix(string(got), line) || strings.Count(string(got), "#") != total {
		t.Errorf("read %d bytes ending %q; want %d filler bytes and then the line", len(got), got[max(0, len(got)-40):], total)
	}
}

// A terminal refuses RWF_NOWAIT; lines then go through the os.File, which may
// wait (flow control), and arrive.
func TestStderrWriterTerminalGoesThroughTheRuntime(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	w := newStderrWriter(pts)
	if _, err := w.Write([]byte("tty\n")); err != nil {
		t.Fatal(err)
	}
	if w.noWait || w.localFile {
		t.Errorf("terminal: noWait %v, localFile %v; want every line through the os.File", w.noWait, w.localFile)
	}
	buf := make([]byte, 16)
	m, _ := ptmx.Read(buf)
	if !strings.HasPrefix(string(buf[:m]), "tty") {
		t.Errorf("terminal read %q", buf[:m])
	}
}

// A broken pipe is the os.File's to report: the error comes back (on fd 2
// the runtime would raise SIGPIPE there, as it always did).
func TestStderrWriterBrokenPipe(t *testing.T) {
	r, wp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wp.Close()
	r.Close()
	w := newStderrWriter(wp)
	if _, err := w.Write([]byte("x\n")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to a broken pipe: %v, want EPIPE", err)
	}
}

// Only regular files on the listed file systems are written raw: not a
// character device, not a pipe, not a file of procfs.
func TestOnLocalFS(t *testing.T) {
	f, err := os.CreateTemp("/dev/shm", "local")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if !onLocalFS(int(f.Fd())) {
		t.Error("a tmpfs file is not local")
	}
	r, wp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer wp.Close()
	null, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	proc, err := os.Open(filepath.Join("/proc/self/status"))
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	for name, fd := range map[string]uintptr{"pipe": wp.Fd(), "/dev/null": null.Fd(), "procfs": proc.Fd()} {
		if onLocalFS(int(fd)) {
			t.Errorf("%s counts as a local file", name)
		}
	}
}

// The daemon's lines go to stderr through the writer above, not straight to
// the os.File, whose every write entered the runtime's blocking-syscall path.
func TestSetupLoggingUsesStderrWriter(t *testing.T) {
	defer slog.SetDefault(slog.Default())
	_, _, logh, err := setupLogging("info")
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := logh.w.(*stderrWriter); !ok || w.file != os.Stderr {
		t.Errorf("the log handler writes to %T, want a stderrWriter on os.Stderr", logh.w)
	}
}
