package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// PidRef is a reference to a process pinned by a pidfd.
type PidRef struct {
	PID int
	// ID is the inode number of the pidfd (unique per process on pidfs,
	// kernel >= 6.9), 0 if unknown.
	ID uint64

	fd *os.File // pidfd, PIDFD_NONBLOCK, close-on-exec

	mu       sync.Mutex
	closed   bool
	exited   chan struct{}
	exitOnce sync.Once
}

// Open pins the process pid with a pidfd.
func Open(pid int) (*PidRef, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("invalid pid %d: %w", pid, syscall.EINVAL)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return newRef(pid, fd), nil
}

// FromFD adopts an existing pidfd; ownership of fd passes to the PidRef (it is
// closed on error too).
func FromFD(fd int) (*PidRef, error) {
	if fd < 0 {
		return nil, fmt.Errorf("invalid pidfd %d: %w", fd, syscall.EBADF)
	}
	pid, err := fdinfoPid(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd %d: %w", fd, err)
	}
	return newRef(pid, fd), nil
}

// AdoptFD is FromFD for a pidfd whose PID the caller already knows (from
// SO_PEERCRED next to SO_PEERPIDFD), saving the fdinfo read.
func AdoptFD(fd, pid int) (*PidRef, error) {
	if fd < 0 || pid <= 0 {
		return nil, fmt.Errorf("invalid pidfd %d for pid %d: %w", fd, pid, syscall.EBADF)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd %d: %w", fd, err)
	}
	return newRef(pid, fd), nil
}

// PidfdID returns the pidfs inode id of a pidfd we do not own (0 when unknown).
func PidfdID(fd int) uint64 {
	var st unix.Stat_t
	if fd < 0 || !onPidfs() || unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// onPidfs says whether pidfds live on pidfs, where the inode number identifies a
// process for the whole boot. It is a property of the kernel: ask once.
var onPidfs = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && int64(sfs.Type) == unix.PID_FS_MAGIC
})

func newRef(pid, fd int) *PidRef {
	p := &PidRef{PID: pid}
	var st unix.Stat_t
	if onPidfs() && unix.Fstat(fd, &st) == nil {
		p.ID = st.Ino
	}
	p.fd = os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	return p
}

// fdinfoPid reads the "Pid:" line of /proc/self/fdinfo/<fd>.
func fdinfoPid(fd int) (int, error) {
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, fmt.Errorf("reading fdinfo of fd %d: %w", fd, err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Pid:"))
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(rest)))
		if err != nil {
			return 0, fmt.Errorf("fd %d: bad Pid line %q: %w", fd, line, syscall.EINVAL)
		}
		if pid <= 0 {
			return 0, fmt.Errorf("fd %d: process gone: %w", fd, syscall.ESRCH)
		}
		return pid, nil
	}
	return 0, fmt.Errorf("fd %d is not a pidfd: %w", fd, syscall.EBADF)
}

// control runs f with the raw pidfd, failing with EBADF after Close.
func (p *PidRef) control(f func(fd int) error) error {
	if p == nil || p.fd == nil {
		return syscall.EBADF
	}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return syscall.EBADF
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return syscall.EBADF
	}
	return ferr
}

// FD returns the raw pidfd, or -1 when closed.
func (p *PidRef) FD() int {
	if p == nil {
		return -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.fd == nil {
		return -1
	}
	return int(p.fd.Fd())
}

func pollReadable(fd int) bool {
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if err == unix.EINTR {
			continue
		}
		return n > 0
	}
}

// Alive reports whether the process has not exited yet.
func (p *PidRef) Alive() bool {
	alive := false
	_ = p.control(func(fd int) error {
		alive = !pollReadable(fd)
		return nil
	})
	return alive
}

// Signal sends sig to the process; ESRCH when it is gone.
func (p *PidRef) Signal(sig syscall.Signal) error {
	return p.control(func(fd int) error {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
			return fmt.Errorf("signalling pid %d: %w", p.PID, err)
		}
		return nil
	})
}

// Verify checks that PID still names the pinned process, so that what was just
// read from /proc/PID belongs to it. A process that has not exited keeps its PID,
// so one poll of the pidfd answers it; an exited one counts as gone.
func (p *PidRef) Verify() error {
	return p.control(func(fd int) error {
		if pollReadable(fd) {
			return fmt.Errorf("pid %d exited: %w", p.PID, syscall.ESRCH)
		}
		return nil
	})
}

// Close releases the pidfd. It is idempotent and unblocks the Exited
// goroutine without closing the channel.
func (p *PidRef) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if p.fd != nil {
		return p.fd.Close()
	}
	return nil
}

// Exited returns a channel closed when the process exits. The same channel is
// returned on every call. The watcher parks on the pidfd itself through the Go
// netpoller — no thread and no extra fd per process, so 10,000 machines cost
// 10,000 fds, as upstream — and stops quietly on Close.
func (p *PidRef) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited != nil {
		return p.exited
	}
	p.exited = make(chan struct{})
	if p.closed || p.fd == nil {
		return p.exited
	}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return p.exited
	}
	ch := p.exited
	go func() {
		// Read returns nil once the callback sees the pidfd readable (exit), or
		// an error when Close shuts the file while we wait.
		if rc.Read(func(fd uintptr) bool { return pollReadable(int(fd)) }) == nil {
			p.exitOnce.Do(func() { close(ch) })
		}
	}()
	return p.exited
}

// UID returns the real UID of the process.
func (p *PidRef) UID() (uint32, error) {
	data, err := readProcFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return 0, fmt.Errorf("reading status of pid %d: %w", p.PID, err)
	}
	var uid uint64
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		if uid, err = strconv.ParseUint(f[0], 10, 32); err != nil {
			return 0, fmt.Errorf("pid %d: bad Uid line: %w", p.PID, syscall.EINVAL)
		}
		found = true
		break
	}
	if !found {
		return 0, fmt.Errorf("pid %d: no Uid line: %w", p.PID, syscall.EINVAL)
	}
	if err := p.Verify(); err != nil {
		return 0, err
	}
	return uint32(uid), nil
}

// readProcFile reads a small /proc file with plain syscalls: no os.File, no
// poller registration, no finalizer. The hot path (registration) reads several.
func readProcFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) < cap(buf) {
			// procfs hands small files over in one read: a short read is the end,
			// which saves the extra read(2) per file on the registration path.
			return buf, nil
		}
	}
}
