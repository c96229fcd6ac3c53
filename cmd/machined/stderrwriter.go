package main

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/quicksys"
)

// stderrWriter writes log lines to stderr with raw system calls where the
// write cannot wait, and through the runtime where it might.
//
// Every registration and every removal logs a line. A write through an
// os.File tells the Go scheduler it may block, and on a daemon that was idle
// a moment ago that wakes the runtime's monitor thread from its deep sleep
// and sets it polling every 20 µs again: on a Register+Unregister ping-pong
// that thread cost more than the two writes themselves. So a line goes out
// as a pwritev2 with RWF_NOWAIT first, which a pipe or a socket (a journal
// stream) takes when it has room and refuses when it would wait; a regular
// file on a local file system, which has no reader to wait for, takes a
// plain raw write. Everything else (a terminal, a file on a network or FUSE
// file system, a full pipe, an error) goes through the os.File, which waits
// as before, and dies of SIGPIPE on a broken pipe as before.
//
// The caller serializes writes (lineHandler's mutex).
type stderrWriter struct {
	file *os.File
	fd   int
	// noWait is false once the file refused RWF_NOWAIT: it never starts
	// taking it later.
	noWait bool
	// localFile: a regular file on a local file system.
	localFile bool
}

func newStderrWriter(f *os.File) *stderrWriter {
	fd := int(f.Fd())
	return &stderrWriter{file: f, fd: fd, noWait: true, localFile: onLocalFS(fd)}
}

func (w *stderrWriter) Write(b []byte) (int, error) {
	n := 0
	if w.noWait {
		var err error
		n, err = quicksys.WriteNoWait(w.fd, b)
		if err == unix.EOPNOTSUPP {
			w.noWait = false
		}
	}
	if !w.noWait && w.localFile {
		n, _ = quicksys.Write(w.fd, b)
	}
	if n == len(b) {
		return n, nil
	}
	m, err := w.file.Write(b[n:])
	return n + m, err
}

// onLocalFS reports whether fd is a regular file on a file system whose
// buffered writes wait for no other process: tmpfs and the common disk file
// systems. Network and FUSE file systems are left out.
func onLocalFS(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil {
		return false
	}
	switch fs.Type {
	case unix.TMPFS_MAGIC, unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC:
		return true
	}
	return false
}
