package copyhelper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/containerfs"
)

// stopGrace is how long a helper has to remove its temporary entries after
// being asked to stop (SIGTERM) before it is killed.
const stopGrace = 5 * time.Second

// Runner starts a helper per copy.
type Runner struct {
	exe   string
	grace time.Duration // stopGrace; shorter in tests
	// started, when set (by tests), is told each helper's pid.
	started func(pid int)
}

// New returns a Runner that starts exe with Arg. exe is normally
// "/proc/self/exe": the running daemon's own binary, even if its file has been
// replaced on disk since.
func New(exe string) *Runner { return &Runner{exe: exe, grace: stopGrace} }

// Copy makes the copy of a directory in a helper and waits for it. ctx ending
// asks the helper to stop (it removes what it has not finished, as an
// in-process copy does) and kills it if it has not stopped within stopGrace.
//
// Anything but a directory is copied in process: one entry costs the daemon's
// scheduler a hand-off per chunk at most, far less than starting a process.
// The look at the source is only a guess at the copy's size: whatever the name
// turns out to be when the copy opens it, either way copies it alike.
func (r *Runner) Copy(ctx context.Context, src, dst containerfs.Side, opt containerfs.Options) error {
	if !r.isDir(src) {
		return containerfs.Copy(ctx, src, dst, opt)
	}
	return r.inHelper(ctx, src, dst, opt)
}

func (r *Runner) isDir(s containerfs.Side) bool {
	var st unix.Stat_t
	err := s.As.Do(func() error { return unix.Fstatat(s.Dir, s.Name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

func (r *Runner) inHelper(ctx context.Context, src, dst containerfs.Side, opt containerfs.Options) error {
	req, err := json.Marshal(request{
		SrcName: src.Name, DstName: dst.Name,
		SrcOwner: src.As.Owner(), DstOwner: dst.As.Owner(),
		Options: opt,
	})
	if err != nil {
		return fmt.Errorf("copy helper request: %w", err)
	}
	files, err := dirFiles(src.Dir, dst.Dir)
	if err != nil {
		return err
	}
	defer func() { closeAll(files) }()
	lifeline, feed, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("copy helper: %w", err)
	}
	defer feed.Close()
	defer lifeline.Close()

	var out, errOut boundedBuffer
	out.max, errOut.max = maxResult, maxStderr
	cmd := exec.CommandContext(ctx, r.exe, Arg)
	cmd.Args[0] = "machined-copy"
	cmd.Env = []string{}
	cmd.Stdin = lifeline
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	cmd.ExtraFiles = files
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = r.grace
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the copy helper: %w", err)
	}
	// The helper has its own copies now.
	lifeline.Close()
	closeAll(files)
	files = nil
	if r.started != nil {
		r.started(cmd.Process.Pid)
	}
	// The request fits the pipe's buffer; a helper that died before reading
	// it shows in Wait.
	feed.Write(append(req, '\n'))
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if res, ok := decodeResult(out.Bytes()); ok {
		if res.Error == "" {
			return nil
		}
		return &copyError{msg: res.Error, errno: syscall.Errno(res.Errno)}
	}
	if waitErr == nil {
		waitErr = errors.New("no result")
	}
	if msg := strings.TrimSpace(errOut.String()); msg != "" {
		return fmt.Errorf("copy helper: %v: %s", waitErr, firstLine(msg))
	}
	return fmt.Errorf("copy helper: %w", waitErr)
}

// dirFiles duplicates the two directory fds for the helper: os.File takes
// ownership of the fd it wraps, and the caller keeps its own.
func dirFiles(fds ...int) ([]*os.File, error) {
	var files []*os.File
	for _, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("copy helper: %w", err)
		}
		files = append(files, os.NewFile(uintptr(d), "dir"))
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func decodeResult(b []byte) (result, bool) {
	var res result
	if err := json.Unmarshal(bytes.TrimSpace(b), &res); err != nil {
		return result{}, false
	}
	return res, true
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// copyError is a helper's error as the daemon sees it: the helper's text, and
// its errno for errors.Is.
type copyError struct {
	msg   string
	errno syscall.Errno
}

func (e *copyError) Error() string { return e.msg }

func (e *copyError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// boundedBuffer keeps the first max bytes written to it and drops the rest:
// a helper cannot make the daemon hold more than that of its output.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
