package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bufpool"
	"github.com/machined-go/machined/internal/quicksys"
)

// PidRef pins a process: its PID plus an open pidfd, so signals and liveness
// checks can't hit a recycled PID. A PidRef is safe for concurrent use; Close
// it when done.
type PidRef struct {
	// PID is the process ID in our PID namespace. Immutable.
	PID int
	// ID is the pidfd's inode number: on pidfs (kernel >= 6.9) unique per
	// process for the whole boot, so it survives PID reuse in persisted state.
	// 0 when unknown. Immutable.
	ID uint64

	// fd is the pidfd (O_NONBLOCK, close-on-exec), a plain descriptor: an
	// os.File would register every leader with the runtime's netpoller, three
	// extra syscalls per registration for a watch only Exited needs.
	fd int

	mu     sync.RWMutex // read-held while fd is in use, so Close cannot recycle it
	closed bool         // Close was called
	// exit is made by the first Exited call. Few pins are ever waited on
	// (a Terminate's), and every machine's leader is pinned, so the two
	// fields are allocated apart: a PidRef fits the 64-byte size class.
	exit *exitWait
}

// exitWait is an Exited caller's wait for the process's exit.
type exitWait struct {
	ch   chan struct{} // closed when the process exits
	file *os.File      // the netpoller registration, a dup of fd
}

// Open pins the running process pid. A process that is already gone yields an
// error wrapping syscall.ESRCH.
func Open(pid int) (*PidRef, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("open pidfd: invalid pid %d: %w", pid, syscall.EINVAL)
	}
	fd, err := quicksys.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open pidfd of pid %d: %w", pid, err)
	}
	return newRef(pid, fd), nil
}

// FromFD adopts a pidfd obtained elsewhere (SO_PEERPIDFD, SCM_PIDFD, D-Bus
// ProcessFD) and reads its PID from /proc/self/fdinfo. It takes ownership of fd:
// fd is closed when FromFD fails.
func FromFD(fd int) (*PidRef, error) {
	if fd < 0 {
		return nil, fmt.Errorf("adopt pidfd: invalid fd %d: %w", fd, syscall.EBADF)
	}
	pid, err := fdinfoPid(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return adopt(fd, pid)
}

// AdoptFD is FromFD for a pidfd whose PID the caller already knows from the
// same source (SO_PEERCRED next to SO_PEERPIDFD), saving the fdinfo read. The
// PID is trusted, not checked. It takes ownership of fd.
func AdoptFD(fd, pid int) (*PidRef, error) {
	if fd < 0 || pid <= 0 {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("adopt pidfd %d of pid %d: %w", fd, pid, syscall.EBADF)
	}
	return adopt(fd, pid)
}

// adopt makes a foreign pidfd look like one from Open: close-on-exec, so it
// does not leak into helpers we spawn, and non-blocking, which the netpoller
// needs for Exited.
func adopt(fd, pid int) (*PidRef, error) {
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("adopt pidfd %d of pid %d: %w", fd, pid, err)
	}
	return newRef(pid, fd), nil
}

func newRef(pid, fd int) *PidRef {
	return &PidRef{PID: pid, ID: quicksys.PidfdID(fd), fd: fd}
}

// PidOfPidfd returns the PID a pidfd names in our PID namespace (from
// /proc/self/fdinfo). A reaped process or one we cannot see is ESRCH.
func PidOfPidfd(fd int) (int, error) { return fdinfoPid(fd) }

// fdinfoPid returns the PID the kernel reports for a pidfd in
// /proc/self/fdinfo/<fd>. The kernel shows -1 once the process has been
// reaped and 0 when it lives in a PID namespace we cannot see; both are ESRCH.
func fdinfoPid(fd int) (int, error) {
	data, err := readProcFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, fmt.Errorf("read fdinfo of fd %d: %w", fd, err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Pid:"))
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(string(bytes.TrimSpace(rest)))
		switch {
		case err != nil:
			return 0, fmt.Errorf("fdinfo of fd %d: bad Pid line %q: %w", fd, line, syscall.EINVAL)
		case pid == -1:
			return 0, fmt.Errorf("pidfd %d: process already reaped: %w", fd, syscall.ESRCH)
		case pid <= 0:
			return 0, fmt.Errorf("pidfd %d: process not visible in our pid namespace: %w", fd, syscall.ESRCH)
		}
		return pid, nil
	}
	return 0, fmt.Errorf("fd %d is not a pidfd: %w", fd, syscall.EBADF)
}

// control runs f on the raw pidfd, holding the read lock so a concurrent Close
// cannot hand the number to another file meanwhile. After Close: EBADF.
func (p *PidRef) control(f func(fd int) error) error {
	if p == nil {
		return syscall.EBADF
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return syscall.EBADF
	}
	return f(p.fd)
}

// FD returns the raw pidfd, or -1 when there is none (closed or nil ref). The
// PidRef keeps owning it: dup it to keep it beyond Close.
func (p *PidRef) FD() int {
	if p == nil {
		return -1
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return -1
	}
	return p.fd
}

// exitedNow reports whether a pidfd is readable, which the kernel makes it
// once the whole thread group has exited, zombie or reaped, child or not.
func exitedNow(fd int) bool {
	exited, _ := quicksys.Readable(fd)
	return exited
}

// Alive reports whether the process is still running: not exited, and so not a
// zombie either. False after Close.
func (p *PidRef) Alive() bool {
	alive := false
	_ = p.control(func(fd int) error {
		alive = !exitedNow(fd)
		return nil
	})
	return alive
}

// Signal sends sig to the process with pidfd_send_signal. A process that is
// gone yields an error wrapping syscall.ESRCH.
func (p *PidRef) Signal(sig syscall.Signal) error {
	return p.control(func(fd int) error {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
			return fmt.Errorf("signal %v to pid %d: %w", sig, p.PID, err)
		}
		return nil
	})
}

// Verify checks that PID still names the pinned process, so that data just
// read from /proc/PID belonged to it. It fails with syscall.ESRCH once the
// process has been reaped (its PID may be reused) or when the PID differs; a
// zombie still owns its PID and passes.
func (p *PidRef) Verify() error {
	return p.control(func(fd int) error {
		// A process that has not exited cannot have lost its PID: one poll
		// answers the common case without reading fdinfo.
		if !exitedNow(fd) {
			return nil
		}
		pid, err := fdinfoPid(fd)
		if err != nil {
			return fmt.Errorf("verify pid %d: %w", p.PID, err)
		}
		if pid != p.PID {
			return fmt.Errorf("verify pid %d: pidfd names pid %d: %w", p.PID, pid, syscall.ESRCH)
		}
		return nil
	})
}

// gone prefers ESRCH for a failed /proc/PID access: when the process has been
// reaped, that (not ENOENT from procfs) is the error callers act on.
func (p *PidRef) gone(err error) error {
	if verr := p.Verify(); verr != nil {
		return verr
	}
	return err
}

// Close releases the pidfd. It is idempotent. A pending Exited watcher stops
// without closing its channel: after Close there is nothing left to observe.
func (p *PidRef) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.exit != nil && p.exit.file != nil {
		p.exit.file.Close()
	}
	return quicksys.Close(p.fd)
}

// Exited returns a channel that is closed when the process exits; every call
// returns the same channel. It works for any process, not just our children.
//
// The first call registers a dup of the pidfd with the Go netpoller and parks
// one goroutine on it: no thread. If the PidRef is closed first, the channel
// is never closed.
func (p *PidRef) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit != nil {
		return p.exit.ch
	}
	ch := make(chan struct{})
	p.exit = &exitWait{ch: ch}
	if p.closed {
		return ch
	}
	dup, err := quicksys.DupCloexec(p.fd)
	if err != nil {
		return ch
	}
	// The dup shares the file description, and with it O_NONBLOCK, so NewFile
	// hands it to the netpoller.
	p.exit.file = os.NewFile(uintptr(dup), "pidfd:"+strconv.Itoa(p.PID))
	rc, err := p.exit.file.SyscallConn()
	if err != nil {
		return ch
	}
	go func() {
		// The callback reports done once the pidfd polls readable; until then
		// Read parks on epoll. Close makes Read return an error instead.
		if rc.Read(func(fd uintptr) bool { return exitedNow(int(fd)) }) == nil {
			close(ch)
		}
	}()
	return ch
}

// UID returns the real UID of the process (first field of the "Uid:" line of
// /proc/PID/status), checked against the pidfd after reading.
func (p *PidRef) UID() (uint32, error) {
	data, err := readProcFile("/proc/" + strconv.Itoa(p.PID) + "/status")
	if err != nil {
		return 0, p.gone(fmt.Errorf("read status of pid %d: %w", p.PID, err))
	}
	uid, err := statusUID(data)
	if err != nil {
		return 0, fmt.Errorf("status of pid %d: %w", p.PID, err)
	}
	if err := p.Verify(); err != nil {
		return 0, err
	}
	return uid, nil
}

// RealIDs returns the real UID and GID of the process, as seen from our user
// namespace, checked against the pidfd after reading.
func (p *PidRef) RealIDs() (uid, gid uint32, err error) {
	data, err := readProcFile("/proc/" + strconv.Itoa(p.PID) + "/status")
	if err != nil {
		return 0, 0, p.gone(fmt.Errorf("read status of pid %d: %w", p.PID, err))
	}
	if uid, err = statusID(data, "Uid:"); err == nil {
		gid, err = statusID(data, "Gid:")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("status of pid %d: %w", p.PID, err)
	}
	if err := p.Verify(); err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// statusUID extracts the real UID from the contents of /proc/PID/status.
func statusUID(data []byte) (uint32, error) { return statusID(data, "Uid:") }

// statusID extracts the first (real) id of the status line with key ("Uid:",
// "Gid:").
func statusID(data []byte, key string) (uint32, error) {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			break
		}
		id, err := strconv.ParseUint(string(f[0]), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad %s line %q: %w", key, line, syscall.EINVAL)
		}
		return uint32(id), nil
	}
	return 0, fmt.Errorf("no %s line: %w", key, syscall.EINVAL)
}

// seqRecordRoom is more than the longest seq_file record of the files we read
// with readProcFile (a uid_map line is 33 bytes; single_open files such as
// cgroup and status are one record that read copies in part when it does not
// fit, filling the buffer).
const seqRecordRoom = 512

// readProcFile reads a small /proc file (see scanProcFile) into a slice of its
// own, sized to the content.
func readProcFile(path string) ([]byte, error) {
	var out []byte
	err := scanProcFile(path, func(b []byte) { out = bytes.Clone(b) })
	return out, err
}

// procBufs are scanProcFile's read buffers: registration reads a few /proc
// files, and a fresh 4 KiB each was a third of what it allocated.
var procBufs = bufpool.New(4096, 64<<10)

// scanProcFile reads a small /proc file with raw syscalls (no os.File, no
// netpoller registration, no finalizer) into a pooled buffer and hands the
// content to use, which must not keep it. It reads until EOF: a short read
// from a seq_file is not the end when the next record did not fit (long
// uid_map or cgroup files).
func scanProcFile(path string, use func([]byte)) error {
	fd, err := quicksys.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer quicksys.Close(fd)
	bp := procBufs.Get()
	buf := (*bp)[:0]
	defer func() { procBufs.Put(bp, buf) }()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := quicksys.Read(fd, buf[len(buf):cap(buf)])
		if err != nil {
			return &os.PathError{Op: "read", Path: path, Err: err}
		}
		buf = buf[:len(buf)+n]
		// seq_file stops short of the buffer only when its next record does
		// not fit, and no record of the files we read comes near this much
		// room: a read that leaves it free is the last, which saves the EOF
		// read on every registration.
		if n == 0 || cap(buf)-len(buf) >= seqRecordRoom {
			use(buf)
			return nil
		}
	}
}
