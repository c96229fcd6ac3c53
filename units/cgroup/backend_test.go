package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/service/proc"
	"golang.org/x/sys/unix"
)

// testRoot returns the host's cgroup2 mount or skips the test.
func testRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating cgroups and moving processes needs root")
	}
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && int64(st.Type) == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	t.Skip("skipping: no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

var sliceSeq atomic.Int32

// newTestBackend returns a backend and a slice unique to this test; the slice's
// processes are killed and its directory tree removed at cleanup.
func newTestBackend(t *testing.T) (*Backend, string) {
	t.Helper()
	root := testRoot(t)
	b, err := New(root, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	slice := fmt.Sprintf("machinedtest%dn%d.slice", os.Getpid(), sliceSeq.Add(1))
	dir := filepath.Join(root, slice)
	t.Cleanup(func() {
		b.wg.Wait()
		if !isDir(dir) {
			return
		}
		b.signalTree(context.Background(), dir, syscall.SIGKILL, false)
		var err error
		for range 50 {
			if err = removeTree(dir); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("cleanup: %v", err)
	})
	return b, slice
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs a command whose process is killed and reaped at cleanup.
func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startGated runs sh -c script with stdin as a gate: the script should "read x"
// before doing anything that must happen inside the scope. Writing a line to the
// returned writer opens the gate.
func startGated(t *testing.T, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	gate, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gate.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, gate
}

// startStubborn puts a process that ignores SIGTERM into a new scope and returns
// once it has set that up (it signals readiness by exec'ing sleep).
func startStubborn(t *testing.T, b *Backend, unit, slice string) *exec.Cmd {
	t.Helper()
	cmd, gate := startGated(t, `trap "" TERM; read x; exec sleep 100`)
	if err := b.CreateScope(context.Background(), request(unit, slice, cmd.Process.Pid, -1)); err != nil {
		t.Fatal(err)
	}
	gate.Write([]byte("go\n"))
	eventually(t, "sleep exec'd", 2*time.Second, func() bool {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		return strings.TrimSpace(string(comm)) == "sleep"
	})
	return cmd
}

func pidfd(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func request(unit, slice string, pid, fd int) service.ScopeRequest {
	return service.ScopeRequest{Unit: unit, Slice: slice, Description: "Container test", LeaderPID: pid, LeaderPIDFD: fd}
}

// waitExit waits for cmd with a deadline and returns how it ended.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) *os.ProcessState {
	t.Helper()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState
	case <-time.After(within):
		t.Fatalf("process %d still running after %v", cmd.Process.Pid, within)
		return nil
	}
}

func signalOf(ps *os.ProcessState) syscall.Signal {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRejectsNonCgroup2(t *testing.T) {
	if _, err := New(t.TempDir(), nil); !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("New(tmpdir) = %v, want ENOTSUP", err)
	}
	if _, err := New("/nonexistent-machined-test", nil); err == nil {
		t.Fatal("New(nonexistent) succeeded")
	}
}

func TestScopeLifecycle(t *testing.T) {
	b, slice := newTestBackend(t)
	ctx := context.Background()
	cmd := start(t, "sleep", "100")
	pid := cmd.Process.Pid
	const unit = `machine-life\x2d1.scope`

	if err := b.CreateScope(ctx, request(unit, slice, pid, pidfd(t, pid))); err != nil {
		t.Fatal(err)
	}
	path, err := proc.CgroupPath(pid)
	if want := "/" + slice + "/" + unit; err != nil || path != want {
		t.Fatalf("cgroup of leader = %q, %v; want %q", path, err, want)
	}
	if u, sub, err := unitOf(pid); err != nil || u != unit || sub != "" {
		t.Fatalf("UnitOfPID = %q, %q, %v", u, sub, err)
	}
	if !active(b, unit) {
		t.Fatal("Active = false for a populated scope")
	}

	if err := b.Kill(ctx, unit, "", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := signalOf(waitExit(t, cmd, 5*time.Second)); sig != syscall.SIGTERM {
		t.Fatalf("leader ended by signal %v, want SIGTERM", sig)
	}
	eventually(t, "scope inactive", 2*time.Second, func() bool { return !active(b, unit) })

	dir := filepath.Join(b.Root(), slice, unit)
	if !isDir(dir) {
		t.Fatal("scope directory vanished before Release")
	}
	b.Release(unit)
	b.wg.Wait()
	if isDir(dir) {
		t.Fatal("scope directory still there after Release")
	}
	if active(b, unit) {
		t.Fatal("Active = true after Release")
	}
	if err := b.Kill(ctx, unit, "", syscall.SIGTERM); !errors.Is(err, service.ErrNoSuchProcess) {
		t.Fatalf("Kill of removed unit = %v, want ErrNoSuchProcess", err)
	}
	if err := b.Stop(ctx, unit); err != nil {
		t.Fatalf("Stop of removed unit = %v, want nil", err)
	}
}

func TestCreateScopeExists(t *testing.T) {
	b, slice := newTestBackend(t)
	ctx := context.Background()
	c1 := start(t, "sleep", "100")
	c2 := start(t, "sleep", "100")
	const unit = "machine-dup.scope"
	if err := b.CreateScope(ctx, request(unit, slice, c1.Process.Pid, -1)); err != nil {
		t.Fatal(err)
	}
	err := b.CreateScope(ctx, request(unit, slice, c2.Process.Pid, -1))
	if !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second CreateScope = %v, want EEXIST", err)
	}
	// The failed attempt must not have touched the existing scope.
	if u, _, _ := unitOf(c1.Process.Pid); u != unit {
		t.Fatalf("first leader now in unit %q", u)
	}
	if u, _, _ := unitOf(c2.Process.Pid); u != "" {
		t.Fatalf("second leader moved into unit %q", u)
	}
}

func TestCreateScopeReplacesStaleDir(t *testing.T) {
	b, slice := newTestBackend(t)
	const unit = "machine-stale.scope"
	stale := filepath.Join(b.Root(), slice, unit)
	// With an empty child, as a daemon stopped halfway through a removal leaves it.
	if err := os.MkdirAll(filepath.Join(stale, "payload"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := start(t, "sleep", "100")
	if err := b.CreateScope(context.Background(), request(unit, slice, cmd.Process.Pid, -1)); err != nil {
		t.Fatalf("CreateScope over a stale empty dir: %v", err)
	}
	if u, _, _ := unitOf(cmd.Process.Pid); u != unit {
		t.Fatalf("leader in unit %q, want %q", u, unit)
	}
}

func TestCreateScopeFailureCleansUp(t *testing.T) {
	b, slice := newTestBackend(t)
	// A reaped child's PID is (almost certainly) unused for a moment.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	err := b.CreateScope(context.Background(), request("machine-gone.scope", slice, cmd.Process.Pid, -1))
	if !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("CreateScope with dead leader = %v, want ESRCH", err)
	}
	if isDir(filepath.Join(b.Root(), slice)) {
		t.Fatal("slice directory created for the failed scope was left behind")
	}

	// A dead pidfd is caught before anything is written.
	c2 := exec.Command("true")
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	fd := pidfd(t, c2.Process.Pid)
	c2.Wait()
	if err := b.CreateScope(context.Background(), request("machine-gone.scope", slice, c2.Process.Pid, fd)); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("CreateScope with dead pidfd = %v, want ESRCH", err)
	}

	for _, bad := range []service.ScopeRequest{
		request("../evil.scope", slice, os.Getpid(), -1),
		request("machine-x.service", slice, os.Getpid(), -1),
		request("machine-x.scope", "../x.slice", os.Getpid(), -1),
		request("machine-x.scope", "-.slice", os.Getpid(), -1),
		request("machine-x.scope", slice, 0, -1),
	} {
		if err := b.CreateScope(context.Background(), bad); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("CreateScope(%+v) = %v, want EINVAL", bad, err)
		}
	}
}

// Slices the backend made for a scope go with their last scope; a slice that
// was there before stays.
func TestSliceRemovedWithLastScope(t *testing.T) {
	b, slice := newTestBackend(t)
	sub := strings.TrimSuffix(slice, ".slice") + "-inner.slice"
	subDir := filepath.Join(b.Root(), slice, sub)
	leaders := map[string]*exec.Cmd{}
	for _, unit := range []string{"machine-a.scope", "machine-b.scope"} {
		cmd := start(t, "sleep", "100")
		if err := b.CreateScope(context.Background(), request(unit, sub, cmd.Process.Pid, -1)); err != nil {
			t.Fatal(err)
		}
		leaders[unit] = cmd
	}
	release := func(unit string) {
		t.Helper()
		leaders[unit].Process.Kill()
		leaders[unit].Wait()
		eventually(t, unit+" inactive", 2*time.Second, func() bool { return !active(b, unit) })
		b.Release(unit)
		b.wg.Wait()
	}
	release("machine-a.scope")
	if !isDir(subDir) {
		t.Fatal("slice removed while a scope is still in it")
	}
	release("machine-b.scope")
	if isDir(subDir) || isDir(filepath.Join(b.Root(), slice)) {
		t.Fatal("slices created for the scopes outlived them")
	}

	// A slice that existed before is not ours to remove.
	if err := os.Mkdir(filepath.Join(b.Root(), slice), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := start(t, "sleep", "100")
	if err := b.CreateScope(context.Background(), request("machine-c.scope", slice, cmd.Process.Pid, -1)); err != nil {
		t.Fatal(err)
	}
	leaders["machine-c.scope"] = cmd
	release("machine-c.scope")
	if !isDir(filepath.Join(b.Root(), slice)) {
		t.Fatal("pre-existing slice removed")
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	b, slice := newTestBackend(t)
	b.StopTimeout = 500 * time.Millisecond
	const unit = "machine-stubborn.scope"
	cmd := startStubborn(t, b, unit, slice)

	start := time.Now()
	if err := b.Stop(context.Background(), unit); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 200*time.Millisecond {
		t.Fatalf("Stop took %v; it must return once the stop is initiated", time.Since(start))
	}
	time.Sleep(200 * time.Millisecond)
	if !active(b, unit) {
		t.Fatal("process ignoring SIGTERM died before the grace period")
	}
	ps := waitExit(t, cmd, 3*time.Second)
	if sig := signalOf(ps); sig != syscall.SIGKILL {
		t.Fatalf("ended by %v, want SIGKILL", sig)
	}
	if d := time.Since(start); d < b.StopTimeout {
		t.Fatalf("killed after %v, before the %v grace period", d, b.StopTimeout)
	}
	// Release during or after the stop removes the directory once it is empty.
	b.Release(unit)
	b.wg.Wait()
	if isDir(filepath.Join(b.Root(), slice, unit)) {
		t.Fatal("scope directory left after Stop+Release")
	}
}

func TestReleaseWaitsForStop(t *testing.T) {
	b, slice := newTestBackend(t)
	b.StopTimeout = 300 * time.Millisecond
	const unit = "machine-relstop.scope"
	cmd := startStubborn(t, b, unit, slice)
	if err := b.Stop(context.Background(), unit); err != nil {
		t.Fatal(err)
	}
	b.Release(unit) // while the stop is still waiting for its grace period
	if sig := signalOf(waitExit(t, cmd, 3*time.Second)); sig != syscall.SIGKILL {
		t.Fatalf("ended by %v, want SIGKILL", sig)
	}
	b.wg.Wait()
	if isDir(filepath.Join(b.Root(), slice, unit)) {
		t.Fatal("scope directory left after Stop with concurrent Release")
	}
}

func TestKillSubgroupAndFallback(t *testing.T) {
	b, slice := newTestBackend(t)
	b.noCgroupKill = true // exercise the cgroup.procs re-scan loop
	ctx := context.Background()
	leader, gate := startGated(t, `read x; sleep 100 & sleep 100 & wait`)
	other := start(t, "sleep", "100")
	const unit = "machine-tree.scope"
	if err := b.CreateScope(ctx, request(unit, slice, leader.Process.Pid, -1)); err != nil {
		t.Fatal(err)
	}
	gate.Write([]byte("go\n"))
	dir := filepath.Join(b.Root(), slice, unit)
	eventually(t, "children forked into the scope", 2*time.Second, func() bool { return len(treeProcs(dir)) == 3 })

	// Put another process into a subgroup, as a payload cgroup would be.
	payload := filepath.Join(dir, "payload")
	if err := os.Mkdir(payload, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(payload, "cgroup.procs"), fmt.Sprint(other.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if u, sub, err := unitOf(other.Process.Pid); err != nil || u != unit || sub != "payload" {
		t.Fatalf("UnitOfPID(payload process) = %q, %q, %v", u, sub, err)
	}

	if err := b.Kill(ctx, unit, "payload", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := signalOf(waitExit(t, other, 3*time.Second)); sig != syscall.SIGTERM {
		t.Fatalf("payload process ended by %v", sig)
	}
	if n := len(treeProcs(dir)); n != 3 {
		t.Fatalf("subgroup kill touched the rest of the unit: %d processes left, want 3", n)
	}
	if err := b.Kill(ctx, unit, "../x", syscall.SIGTERM); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Kill with escaping subgroup = %v, want EINVAL", err)
	}

	if err := b.Kill(ctx, unit, "", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := signalOf(waitExit(t, leader, 3*time.Second)); sig != syscall.SIGKILL {
		t.Fatalf("leader ended by %v", sig)
	}
	eventually(t, "scope empty", 3*time.Second, func() bool { return !active(b, unit) })
	b.Release(unit)
	b.wg.Wait()
	if isDir(dir) {
		t.Fatal("scope with an empty child cgroup not removed")
	}
}

func TestCgroupKill(t *testing.T) {
	b, slice := newTestBackend(t)
	cmd := start(t, "sleep", "100")
	const unit = "machine-ck.scope"
	if err := b.CreateScope(context.Background(), request(unit, slice, cmd.Process.Pid, -1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), slice, unit, "cgroup.kill")); err != nil {
		t.Skipf("skipping: kernel without cgroup.kill: %v", err)
	}
	if err := b.Kill(context.Background(), unit, "", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := signalOf(waitExit(t, cmd, 3*time.Second)); sig != syscall.SIGKILL {
		t.Fatalf("ended by %v", sig)
	}
}

func TestAdoptedUnit(t *testing.T) {
	b, slice := newTestBackend(t)
	// A unit this backend did not create, two slices deep.
	inner := strings.TrimSuffix(slice, ".slice") + "-x.slice"
	dir := filepath.Join(b.Root(), slice, inner, "adopted.service", "sub")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := start(t, "sleep", "100")
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), fmt.Sprint(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if u, sub, err := unitOf(cmd.Process.Pid); err != nil || u != "adopted.service" || sub != "sub" {
		t.Fatalf("UnitOfPID = %q, %q, %v", u, sub, err)
	}
	if !active(b, "adopted.service") {
		t.Fatal("adopted unit not found active")
	}
	b.Release("adopted.service")
	b.wg.Wait()
	if !isDir(filepath.Dir(dir)) {
		t.Fatal("Release removed a unit the backend did not create")
	}
	if err := b.Kill(context.Background(), "adopted.service", "", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := signalOf(waitExit(t, cmd, 3*time.Second)); sig != syscall.SIGTERM {
		t.Fatalf("ended by %v", sig)
	}
}

// Concurrent creations in a fresh slice, some failing, must not remove each
// other's slice directory.
func TestCreateScopeConcurrent(t *testing.T) {
	b, slice := newTestBackend(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	const n = 8
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = start(t, "sleep", "100")
	}
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			errs <- b.CreateScope(context.Background(), request(fmt.Sprintf("machine-c%d.scope", i), slice, cmds[i].Process.Pid, -1))
		}()
		go func() {
			errs <- b.CreateScope(context.Background(), request(fmt.Sprintf("machine-d%d.scope", i), slice, dead.Process.Pid, -1))
		}()
	}
	failed := 0
	for range 2 * n {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != n {
		t.Fatalf("%d creations failed, want %d", failed, n)
	}
	for i, c := range cmds {
		if u, _, _ := unitOf(c.Process.Pid); u != fmt.Sprintf("machine-c%d.scope", i) {
			t.Errorf("process %d in unit %q", i, u)
		}
	}
}

// active reports whether a unit's cgroup is populated: what the tests observe
// of a scope's life. A missing cgroup or an invalid name is inactive.
func active(b *Backend, unit string) bool {
	dir, err := b.unitDir(unit)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EINVAL) {
		return false
	}
	if err != nil {
		return true
	}
	pop, err := populated(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || pop
}

// unitOf is the unit a process is in and its cgroup below that unit, read from
// /proc/PID/cgroup as the core reads it.
func unitOf(pid int) (unit, subgroup string, err error) {
	path, err := proc.CgroupPath(pid)
	if err != nil {
		return "", "", err
	}
	unit, subgroup = proc.UnitFromCgroupPath(path)
	return unit, subgroup, nil
}
