package proc

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/machined-go/machined/internal/quicksys"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// startChild starts args as a child that is killed and reaped at cleanup.
func startChild(t *testing.T, attr *syscall.SysProcAttr, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// openChild pins a freshly started child.
func openChild(t *testing.T, cmd *exec.Cmd) *PidRef {
	t.Helper()
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("Open(%d): %v", cmd.Process.Pid, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// reapedPID returns the PID of a process that has exited and been reaped.
func reapedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Exited did not fire", what)
	}
}

func staysOpen(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: Exited fired", what)
	case <-time.After(d):
	}
}

func TestOpenInvalidPID(t *testing.T) {
	for _, pid := range []int{0, -1} {
		if _, err := Open(pid); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Open(%d) = %v, want EINVAL", pid, err)
		}
	}
}

func TestOpenGone(t *testing.T) {
	if _, err := Open(reapedPID(t)); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Open(reaped) = %v, want ESRCH", err)
	}
}

func TestPidRefLive(t *testing.T) {
	p := openChild(t, startChild(t, nil, "sleep", "60"))
	if !p.Alive() {
		t.Error("Alive = false for a running process")
	}
	if err := p.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	fd := p.FD()
	if fd < 0 {
		t.Fatal("FD = -1")
	}
	// FD must not strip PIDFD_NONBLOCK, and the fd must not leak into children.
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("pidfd flags %#x (%v): want O_NONBLOCK", fl, err)
	}
	fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("pidfd fd flags %#x (%v): want FD_CLOEXEC", fdfl, err)
	}
	if pid, err := fdinfoPid(fd); err != nil || pid != p.PID {
		t.Errorf("fdinfo Pid = %d, %v; want %d", pid, err, p.PID)
	}
}

func TestPidfdIDs(t *testing.T) {
	if !quicksys.PidfdInodeSupported() {
		t.Skip("pidfds are not on pidfs (kernel < 6.9)")
	}
	a := openChild(t, startChild(t, nil, "sleep", "60"))
	b := openChild(t, startChild(t, nil, "sleep", "60"))
	if a.ID == 0 || b.ID == 0 {
		t.Fatalf("IDs %d, %d: want non-zero on pidfs", a.ID, b.ID)
	}
	if a.ID == b.ID {
		t.Errorf("two processes share pidfd ID %d", a.ID)
	}
	again, err := Open(a.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.ID != a.ID {
		t.Errorf("second pidfd of pid %d: ID %d, want %d", a.PID, again.ID, a.ID)
	}
	if got := quicksys.PidfdID(a.FD()); got != a.ID {
		t.Errorf("PidfdID = %d, want %d", got, a.ID)
	}
	if got := quicksys.PidfdID(-1); got != 0 {
		t.Errorf("quicksys.PidfdID(-1) = %d", got)
	}
}

func TestFromFD(t *testing.T) {
	p := openChild(t, startChild(t, nil, "sleep", "60"))
	dup, err := unix.FcntlInt(uintptr(p.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := FromFD(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.PID != p.PID || q.ID != p.ID {
		t.Errorf("FromFD = pid %d id %d, want %d/%d", q.PID, q.ID, p.PID, p.ID)
	}
	if !q.Alive() || q.Verify() != nil {
		t.Error("adopted pidfd not usable")
	}
}

func TestFromFDNotAPidfd(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFD(fd); !errors.Is(err, syscall.EBADF) {
		t.Errorf("FromFD(/dev/null) = %v, want EBADF", err)
	}
	if _, err := FromFD(-1); !errors.Is(err, syscall.EBADF) {
		t.Errorf("FromFD(-1) = %v, want EBADF", err)
	}
}

func TestFromFDReaped(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "60")
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := FromFD(fd); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("FromFD(reaped) = %v, want ESRCH", err)
	}
}

func TestFromPeerPidfd(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pidfd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		t.Skipf("SO_PEERPIDFD: %v", err)
	}
	p, err := FromFD(pidfd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID != os.Getpid() {
		t.Errorf("peer pidfd names pid %d, want ourselves (%d)", p.PID, os.Getpid())
	}
	if fl, _ := unix.FcntlInt(uintptr(p.FD()), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Error("adopted pidfd is blocking")
	}
}

func TestAdoptFD(t *testing.T) {
	p := openChild(t, startChild(t, nil, "sleep", "60"))
	dup, err := unix.FcntlInt(uintptr(p.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := AdoptFD(dup, p.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.PID != p.PID || q.ID != p.ID || !q.Alive() {
		t.Errorf("AdoptFD = %d/%d alive=%v", q.PID, q.ID, q.Alive())
	}
	if _, err := AdoptFD(-1, 1); !errors.Is(err, syscall.EBADF) {
		t.Errorf("AdoptFD(-1) = %v", err)
	}
}

func TestSignal(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "60")
	p := openChild(t, cmd)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("child ended with %v, want SIGTERM", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Signal after reap = %v, want ESRCH", err)
	}
}

// TestZombieThenReaped walks a child through its states: a zombie has exited
// (not Alive, Exited fires) but still owns its PID (Verify passes); once reaped
// the PID is free and Verify fails.
func TestZombieThenReaped(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "60")
	p := openChild(t, cmd)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, p.Exited(), "zombie")
	if p.Alive() {
		t.Error("zombie reported Alive")
	}
	if err := p.Verify(); err != nil {
		t.Errorf("Verify on zombie = %v, want nil (it still owns its pid)", err)
	}
	cmd.Wait()
	if p.Alive() {
		t.Error("reaped process reported Alive")
	}
	if err := p.Verify(); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Verify after reap = %v, want ESRCH", err)
	}
	if _, err := p.UID(); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("UID after reap = %v, want ESRCH", err)
	}
}

func TestClose(t *testing.T) {
	p := openChild(t, startChild(t, nil, "sleep", "60"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if p.FD() != -1 || p.Alive() {
		t.Error("closed PidRef still usable")
	}
	if err := p.Verify(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Verify after Close = %v, want EBADF", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Signal after Close = %v, want EBADF", err)
	}
	var nilRef *PidRef
	if nilRef.FD() != -1 || nilRef.Close() != nil || nilRef.Alive() {
		t.Error("nil PidRef misbehaves")
	}
}

func TestExitedChild(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "0.2")
	p := openChild(t, cmd)
	ch := p.Exited()
	if p.Exited() != ch {
		t.Fatal("Exited returned different channels")
	}
	// Nobody reaps the child yet: the pidfd turns readable at exit regardless.
	waitClosed(t, ch, "child")
	if p.Exited() != ch {
		t.Fatal("Exited returned a different channel after firing")
	}
}

func TestExitedNotAChild(t *testing.T) {
	// The background sleep is our grandchild; its parent shell exits at once, so
	// it is reparented away from us and we could never wait for it.
	out, err := exec.Command("sh", "-c", "sleep 1 >/dev/null 2>&1 </dev/null & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("bad pid %q", out)
	}
	p, err := Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if ppid := parentPID(t, pid); ppid == os.Getpid() {
		t.Fatalf("pid %d is our child", pid)
	}
	ch := p.Exited()
	staysOpen(t, ch, 100*time.Millisecond, "grandchild while running")
	waitClosed(t, ch, "grandchild")
	if p.Alive() {
		t.Error("exited grandchild reported Alive")
	}
}

func parentPID(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("PPid:")); ok {
			n, _ := strconv.Atoi(string(bytes.TrimSpace(rest)))
			return n
		}
	}
	t.Fatalf("no PPid in status of %d", pid)
	return 0
}

func TestExitedClosedFirst(t *testing.T) {
	cmd := startChild(t, nil, "sleep", "60")
	p := openChild(t, cmd)
	ch := p.Exited()
	p.Close()
	cmd.Process.Kill()
	staysOpen(t, ch, 200*time.Millisecond, "after Close")

	q := openChild(t, startChild(t, nil, "sleep", "60"))
	q.Close()
	staysOpen(t, q.Exited(), 50*time.Millisecond, "Exited called after Close")
}

// TestExitedNoThreadPerProcess checks that watchers park on the netpoller:
// many watched processes must not cost an OS thread each.
func TestExitedNoThreadPerProcess(t *testing.T) {
	const n = 64
	before := threadCount(t)
	var refs []*PidRef
	for range n {
		p := openChild(t, startChild(t, nil, "sleep", "60"))
		p.Exited()
		refs = append(refs, p)
	}
	time.Sleep(100 * time.Millisecond)
	if after := threadCount(t); after-before >= n/2 {
		t.Errorf("threads grew from %d to %d for %d watchers", before, after, n)
	}
	for _, p := range refs {
		p.Signal(syscall.SIGKILL)
	}
	for _, p := range refs {
		waitClosed(t, p.Exited(), "bulk")
	}
}

func threadCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestUID(t *testing.T) {
	needRoot(t)
	p := openChild(t, startChild(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "sleep", "60"))
	if uid, err := p.UID(); err != nil || uid != 65534 {
		t.Errorf("UID = %d, %v; want 65534", uid, err)
	}
	self, err := Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if uid, err := self.UID(); err != nil || uid != uint32(os.Getuid()) {
		t.Errorf("own UID = %d, %v", uid, err)
	}
}

func TestStatusUID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"Name:\tsleep\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n", 1000, true},
		{"Uid:\t4294967294\t1\t2\t3\n", 4294967294, true},
		{"Name:\tx\n", 0, false},
		{"Uid:\n", 0, false},
		{"Uid:\tabc\t0\t0\t0\n", 0, false},
		{"Uid:\t4294967296\t0\t0\t0\n", 0, false},
	} {
		got, err := statusUID([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("statusUID(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestReadProcFileLong(t *testing.T) {
	// Longer than the first buffer: must come back whole.
	want := bytes.Repeat([]byte("0123456789abcdef\n"), 1000)
	path := t.TempDir() + "/long"
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readProcFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("readProcFile returned %d bytes (%v), want %d", len(got), err, len(want))
	}
	if _, err := readProcFile("/proc/does-not-exist"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// Every machine's leader is pinned: a PidRef stays within the 64-byte size
// class of Go's allocator.
func TestPidRefSize(t *testing.T) {
	if n := unsafe.Sizeof(PidRef{}); n > 64 {
		t.Errorf("PidRef is %d bytes, want at most 64", n)
	}
}
