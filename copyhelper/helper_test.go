package copyhelper

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/internal/filetest"
	"github.com/machined-go/machined/internal/leasetest"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/containerfs"
	"github.com/machined-go/machined/service/proc"
)

// The test binary is its own helper, as the daemon's binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

func testRunner() *Runner {
	r := New("/proc/self/exe")
	r.grace = 200 * time.Millisecond
	return r
}

func side(t *testing.T, dir, name string, owner proc.Owner) containerfs.Side {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	th, err := proc.StartOwnerThread(owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(th.Close)
	return containerfs.Side{Dir: fd, Name: name, As: th}
}

// A copy made by the helper is the tree, modes and links included, and it is
// made in another process.
func TestCopyInHelper(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	filetest.WriteFile(t, src+"/tree/a", "alpha", 0o640)
	filetest.WriteFile(t, src+"/tree/sub/b", strings.Repeat("b", 300<<10), 0o755)
	if err := os.Symlink("../a", src+"/tree/sub/link"); err != nil {
		t.Fatal(err)
	}
	r := testRunner()
	var pids []int
	r.started = func(pid int) { pids = append(pids, pid) }
	err := r.Copy(context.Background(), side(t, src, "tree", proc.Owner{}), side(t, dst, "copy", proc.Owner{}), containerfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] == os.Getpid() {
		t.Errorf("helper pids %v, want one other than ours", pids)
	}
	for path, want := range map[string]string{"a": "alpha", "sub/b": strings.Repeat("b", 300<<10)} {
		got, err := os.ReadFile(dst + "/copy/" + path)
		if err != nil || string(got) != want {
			t.Errorf("%s: %d bytes, %v", path, len(got), err)
		}
	}
	for path, want := range map[string]os.FileMode{"a": 0o640, "sub/b": 0o755} {
		if fi, err := os.Stat(dst + "/copy/" + path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if target, err := os.Readlink(dst + "/copy/sub/link"); err != nil || target != "../a" {
		t.Errorf("link: %q, %v", target, err)
	}
}

// The helper's failures keep their errno, which the daemon's error table
// reads, and the identity of each side reaches the helper.
func TestHelperErrorsKeepErrno(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	filetest.WriteFile(t, src+"/d/f", "new", 0o644)
	filetest.WriteFile(t, dst+"/d/f", "old", 0o644)
	r := testRunner()
	helpers := 0
	r.started = func(int) { helpers++ }
	err := r.Copy(context.Background(), side(t, src, "d", proc.Owner{}), side(t, dst, "d", proc.Owner{}), containerfs.Options{})
	if !errors.Is(err, syscall.EEXIST) {
		t.Errorf("copy over an existing file without replace: %v, want EEXIST", err)
	}
	if got, _ := os.ReadFile(dst + "/d/f"); string(got) != "old" {
		t.Errorf("the refused copy changed the file: %q", got)
	}

	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	nobody := proc.Owner{UID: 65534, GID: 65534}
	err = r.Copy(context.Background(), side(t, src, "d", proc.Owner{}), side(t, private, "g", nobody), containerfs.Options{})
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("nobody writing into root's 0700 directory: %v, want EACCES", err)
	}
	if _, err := os.Lstat(private + "/g"); err == nil {
		t.Error("nobody's copy was written")
	}
	if helpers != 2 {
		t.Errorf("%d helpers started, want one per copy", helpers)
	}
}

// A directory is copied by a helper; a single file, or a name that does not
// exist, in process, with the same result and errors.
func TestOnlyTreesGoToAHelper(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	filetest.WriteFile(t, src+"/f", "one file", 0o600)
	r := testRunner()
	helpers := 0
	r.started = func(int) { helpers++ }
	if err := r.Copy(context.Background(), side(t, src, "f", proc.Owner{}), side(t, dst, "f", proc.Owner{}), containerfs.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst + "/f"); string(got) != "one file" {
		t.Errorf("copied %q", got)
	}
	err := r.Copy(context.Background(), side(t, src, "missing", proc.Owner{}), side(t, dst, "m", proc.Owner{}), containerfs.Options{})
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("copy of a missing name: %v, want ENOENT", err)
	}
	if helpers != 0 {
		t.Errorf("%d helpers started for single entries", helpers)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func alive(pid int) bool { return unix.Kill(pid, 0) == nil }

// blockedCopy is a copy of src/name to dst/into through r, started and
// stopped in a helper that is blocked opening the leased file.
type blockedCopy struct {
	lease  *leasetest.Lease
	helper int
	cancel context.CancelFunc
	done   chan error
}

// startBlocked starts the copy once held (a file under src/name) is leased,
// and returns when the helper is blocked on the lease.
func startBlocked(t *testing.T, r *Runner, src, name, held, dst, into string) *blockedCopy {
	t.Helper()
	b := &blockedCopy{lease: leasetest.Hold(t, held), done: make(chan error, 1)}
	pid := make(chan int, 1)
	r.started = func(p int) { pid <- p }
	var ctx context.Context
	ctx, b.cancel = context.WithCancel(context.Background())
	go func() {
		b.done <- r.Copy(ctx, side(t, src, name, proc.Owner{}), side(t, dst, into, proc.Owner{}), containerfs.Options{})
	}()
	b.helper = <-pid
	waitFor(t, "the helper blocked on the lease", func() bool { return b.lease.Waiters(t) > 0 })
	return b
}

// Ending the context stops the helper: it finishes the call it is in, removes
// what it had started and exits; nothing is left under the final name or a
// temporary one, and no process is left behind.
func TestHelperCancelled(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	filetest.WriteFile(t, src+"/tree/a", "alpha", 0o644)
	filetest.WriteFile(t, src+"/tree/z", "held", 0o644)
	r := testRunner()
	r.grace = time.Minute
	c := startBlocked(t, r, src, "tree", src+"/tree/z", dst, "copy")
	c.cancel()
	// The helper learns of the end by a signal, asynchronously: the lease is
	// released once it has had time to, and the open it is blocked in then
	// completes into a copy that stops there.
	time.Sleep(500 * time.Millisecond)
	c.lease.Release()
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: %v", err)
	}
	if alive(c.helper) {
		t.Errorf("helper %d still there", c.helper)
	}
	if entries, _ := os.ReadDir(dst); len(entries) > 0 {
		t.Errorf("cancelled copy left %v", entries)
	}
}

// A helper that does not stop when asked (here: stuck opening a leased file)
// is killed once the grace period is over, and Copy returns.
func TestHelperKilledAfterGrace(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	filetest.WriteFile(t, src+"/d/z", "held", 0o644)
	c := startBlocked(t, testRunner(), src, "d", src+"/d/z", dst, "d")
	c.cancel()
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled copy: %v", err)
	}
	if alive(c.helper) {
		t.Errorf("helper %d survived its grace period", c.helper)
	}
}

// startHelper runs the helper by hand, with the two directories as its fds
// and the returned pipe as its stdin.
func startHelper(t *testing.T, dirs ...string) (*exec.Cmd, *os.File, *strings.Builder) {
	t.Helper()
	var files []*os.File
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	in, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	cmd := exec.Command("/proc/self/exe", Arg)
	cmd.Stdin, cmd.Stdout, cmd.ExtraFiles = in, out, files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	t.Cleanup(func() { feed.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd, feed, out
}

// The daemon's end of stdin is the helper's lifeline: a daemon gone before
// sending the request, or during the copy, ends the helper.
func TestHelperLifeline(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	cmd, feed, _ := startHelper(t, src, dst)
	feed.Close()
	if err := cmd.Wait(); err == nil {
		t.Error("a helper without a request exited 0")
	}

	filetest.WriteFile(t, src+"/z", "held", 0o644)
	lease := leasetest.Hold(t, src+"/z")
	cmd, feed, out := startHelper(t, src, dst)
	req, _ := json.Marshal(request{SrcName: "z", DstName: "z"})
	feed.Write(append(req, '\n'))
	waitFor(t, "the helper blocked on the lease", func() bool { return lease.Waiters(t) > 0 })
	feed.Close()
	// The lease is released once the helper has had time to see its
	// lifeline cut; the open then completes and the copy stops there.
	time.Sleep(500 * time.Millisecond)
	lease.Release()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	res, ok := decodeResult([]byte(out.String()))
	if !ok || !strings.Contains(res.Error, "context canceled") {
		t.Errorf("result %q, want the copy cancelled", out.String())
	}
	if _, err := os.Lstat(dst + "/z"); err == nil {
		t.Error("the copy of a helper whose daemon left was completed")
	}
}

// The helper refuses fds that are not directories rather than resolving
// names against them.
func TestHelperRefusesNonDirectories(t *testing.T) {
	dir := t.TempDir()
	filetest.WriteFile(t, dir+"/file", "x", 0o644)
	cmd, feed, out := startHelper(t, dir+"/file", dir)
	req, _ := json.Marshal(request{SrcName: "a", DstName: "b"})
	feed.Write(append(req, '\n'))
	feed.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	res, ok := decodeResult([]byte(out.String()))
	if !ok || res.Errno != int(syscall.EBADF) {
		t.Errorf("result %q, want EBADF", out.String())
	}
}

// What a helper writes is held only up to its bound.
func TestBoundedBuffer(t *testing.T) {
	b := boundedBuffer{max: 10}
	for range 3 {
		if n, err := b.Write([]byte("0123456")); n != 7 || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if b.String() != "0123456012" {
		t.Errorf("kept %q", b.String())
	}
}
