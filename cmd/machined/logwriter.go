package main

import (
	"errors"
	"io"
	"os"
	"sync/atomic"

	"github.com/machined-go/machined/internal/quicksys"
	"golang.org/x/sys/unix"
)

// logWriter writes log lines to stderr with a raw system call where the kernel
// will not make it wait, and through the *os.File otherwise. Every
// registration and every removal logs a line, and a write through os.File
// tells the Go scheduler it may block, which on an idle daemon wakes the
// runtime's monitor thread with a futex and sets it polling again: that
// wake-up cost more CPU than the write. The raw write keeps the thread's P, so
// it is used only where it cannot be held up by a reader: RWF_NOWAIT (pipes,
// sockets, the journal's stream) answers EAGAIN instead of waiting for room,
// and a file on tmpfs has no disk to wait on. Whatever the raw write could not
// take goes through the file, which waits as before; an error (EPIPE above
// all, whose SIGPIPE handling os.File owns) is left to the file to reproduce.
type logWriter struct {
	file io.Writer
	fd   int
	how  atomic.Int32 // a rawWrite
}

// rawWrite is how logWriter tries a line before the file.
type rawWrite int32

const (
	rawNone   rawWrite = iota // never: every line through the file
	rawNoWait                 // pwritev2 with RWF_NOWAIT
	rawPlain                  // write(2): a file on tmpfs
)

// newLogWriter wraps f, which must stay open for the daemon's life. The
// descriptor is taken through SyscallConn: os.File.Fd would switch a
// non-blocking stderr to blocking mode.
func newLogWriter(f *os.File) *logWriter {
	w := &logWriter{file: f, fd: -1}
	rc, err := f.SyscallConn()
	if err != nil {
		return w
	}
	rc.Control(func(fd uintptr) { w.fd = int(fd) })
	w.how.Store(int32(rawWriteFor(w.fd)))
	return w
}

// rawWriteFor picks the raw write fd allows.
func rawWriteFor(fd int) rawWrite {
	if fd < 0 {
		return rawNone
	}
	var st unix.Stat_t
	if quicksys.Fstat(fd, &st) != nil {
		return rawNone
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		var sfs unix.Statfs_t
		if unix.Fstatfs(fd, &sfs) == nil && (sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC) {
			return rawPlain
		}
		// Buffered writes to disk file systems answer RWF_NOWAIT with
		// EOPNOTSUPP: not worth a failed call per line.
		return rawNone
	}
	return rawNoWait
}

func (w *logWriter) Write(b []byte) (int, error) {
	done := 0
	switch rawWrite(w.how.Load()) {
	case rawNoWait:
		n, err := quicksys.WriteNoWait(w.fd, b)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			w.how.Store(int32(rawNone))
		}
		if err == nil {
			done = n
		}
	case rawPlain:
		if n, err := quicksys.Write(w.fd, b); err == nil {
			done = n
		}
	}
	if done == len(b) {
		return done, nil
	}
	n, err := w.file.Write(b[done:])
	return done + n, err
}
