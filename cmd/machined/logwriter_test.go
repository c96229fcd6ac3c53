package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fileRecorder stands for the *os.File: it records what reached it and
// passes it on to w (nil: swallowed).
type fileRecorder struct {
	w       io.Writer
	calls   [][]byte
	onWrite func() // called before each write, if set
}

func (f *fileRecorder) Write(b []byte) (int, error) {
	f.calls = append(f.calls, append([]byte(nil), b...))
	if f.onWrite != nil {
		f.onWrite()
	}
	if f.w == nil {
		return len(b), nil
	}
	return f.w.Write(b)
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func rawFD(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

func TestRawWriteForKinds(t *testing.T) {
	_, pw := pipe(t)
	if got := rawWriteFor(rawFD(t, pw)); got != rawNoWait {
		t.Errorf("pipe: %d, want rawNoWait", got)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if got := rawWriteFor(fds[0]); got != rawNoWait {
		t.Errorf("stream socket: %d, want rawNoWait", got)
	}
	if got := rawWriteFor(-1); got != rawNone {
		t.Errorf("no fd: %d, want rawNone", got)
	}
	dir := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := rawNone
	if sfs.Type == unix.TMPFS_MAGIC {
		want = rawPlain
	}
	if got := rawWriteFor(rawFD(t, f)); got != want {
		t.Errorf("file in %s (fs type %#x): %d, want %d", dir, sfs.Type, got, want)
	}
	if err := unix.Statfs("/dev/shm", &sfs); err == nil && sfs.Type == unix.TMPFS_MAGIC {
		f, err := os.CreateTemp("/dev/shm", "logwriter-test-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if got := rawWriteFor(rawFD(t, f)); got != rawPlain {
			t.Errorf("file on tmpfs: %d, want rawPlain", got)
		}
	}
}

// A pipe with room takes every line raw: the file is never asked.
func TestLogWriterPipeWithRoomBypassesFile(t *testing.T) {
	pr, pw := pipe(t)
	rec := &fileRecorder{}
	w := &logWriter{file: rec, fd: rawFD(t, pw)}
	w.how.Store(int32(rawNoWait))
	lines := []string{"first line\n", "second line\n", strings.Repeat("x", 3000) + "\n"}
	for _, l := range lines {
		if n, err := w.Write([]byte(l)); n != len(l) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	pw.Close()
	got, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.Join(lines, "") {
		t.Fatalf("pipe got %q", got)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("the file was asked %d times", len(rec.calls))
	}
}

// A full pipe: what the raw write could not take goes through the file, after
// what it took, so the line arrives whole and in order.
func TestLogWriterFullPipeFallsBackInOrder(t *testing.T) {
	pr, pw := pipe(t)
	fd := rawFD(t, pw)
	capacity, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	filler := bytes.Repeat([]byte{'.'}, capacity-10)
	if _, err := pw.Write(filler); err != nil {
		t.Fatal(err)
	}
	var readBack bytes.Buffer
	done := make(chan error, 1)
	// The file's write blocks until the pipe is drained: start draining
	// only then, so that the raw write met a full pipe.
	rec := &fileRecorder{w: pw, onWrite: func() {
		go func() {
			_, err := io.Copy(&readBack, pr)
			done <- err
		}()
	}}
	w := &logWriter{file: rec, fd: fd}
	w.how.Store(int32(rawNoWait))
	line := []byte(strings.Repeat("L", 100) + "\n")
	if n, err := w.Write(line); n != len(line) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(rec.calls) != 1 || len(rec.calls[0]) == 0 || !bytes.HasSuffix(line, rec.calls[0]) {
		t.Fatalf("the file got %q, want one tail of the line", rec.calls)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(nil), filler...), line...); !bytes.Equal(readBack.Bytes(), want) {
		t.Fatalf("read %d bytes, want %d in order", readBack.Len(), len(want))
	}
}

// A broken pipe is the file's to report (os.File owns EPIPE's SIGPIPE rule):
// it gets the whole line.
func TestLogWriterBrokenPipeGoesToFile(t *testing.T) {
	pr, pw := pipe(t)
	pr.Close()
	fail := errors.New("file error")
	rec := &fileRecorder{w: errWriter{fail}}
	w := &logWriter{file: rec, fd: rawFD(t, pw)}
	w.how.Store(int32(rawNoWait))
	line := []byte("a line\n")
	if _, err := w.Write(line); !errors.Is(err, fail) {
		t.Fatalf("Write error %v, want the file's", err)
	}
	if len(rec.calls) != 1 || !bytes.Equal(rec.calls[0], line) {
		t.Fatalf("the file got %q, want the line", rec.calls)
	}
	if rawWrite(w.how.Load()) != rawNoWait {
		t.Fatal("a broken pipe turned the raw write off")
	}
}

// A file that cannot promise not to wait answers EOPNOTSUPP once; from then
// on every line goes through the file without trying.
func TestLogWriterUnsupportedStopsTrying(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(rawFD(t, f), &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, which this kernel may let write without waiting")
	}
	rec := &fileRecorder{w: f}
	w := &logWriter{file: rec, fd: rawFD(t, f)}
	w.how.Store(int32(rawNoWait))
	for _, l := range []string{"one\n", "two\n"} {
		if n, err := w.Write([]byte(l)); n != len(l) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(rec.calls) != 2 {
		t.Skipf("this file system took RWF_NOWAIT writes (%d lines through the file)", len(rec.calls))
	}
	if rawWrite(w.how.Load()) != rawNone {
		t.Fatalf("still trying raw writes after EOPNOTSUPP")
	}
	got, _ := os.ReadFile(f.Name())
	if string(got) != "one\ntwo\n" {
		t.Fatalf("file holds %q", got)
	}
}

// A file on tmpfs is written raw, whole.
func TestLogWriterTmpfsFileRaw(t *testing.T) {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &sfs); err != nil || sfs.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	f, err := os.CreateTemp("/dev/shm", "logwriter-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := &fileRecorder{}
	w := newLogWriter(f)
	w.file = rec
	if rawWrite(w.how.Load()) != rawPlain {
		t.Fatalf("how = %d, want rawPlain", w.how.Load())
	}
	if _, err := w.Write([]byte("tmpfs line\n")); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("the file was asked: %q", rec.calls)
	}
	got, _ := os.ReadFile(f.Name())
	if string(got) != "tmpfs line\n" {
		t.Fatalf("file holds %q", got)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
