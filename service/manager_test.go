package service

import (
	"sync"

	"golang.org/x/sys/unix"

	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), HostMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

var root = Caller{UID: 0, PIDFD: -1, PID: os.Getpid()}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegisterLifecycle(t *testing.T) {
	m := newTestManager(t)
	events, cancel := subscribe(m, 16)
	defer cancel()
	leader := startSleep(t)
	mi, err := m.Register(context.Background(), root, RegisterRequest{Name: "c1", Class: "container", Leader: leader.Process.Pid, Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if mi.Leader.PID != leader.Process.Pid || mi.State != StateRunning || mi.Supervisor.PID != os.Getpid() {
		t.Errorf("snapshot: %+v", mi)
	}
	if ev := <-events; ev.Kind != MachineNew || ev.Name != "c1" {
		t.Errorf("event %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.StateDir, "c1")); err != nil {
		t.Errorf("no state file: %v", err)
	}
	if got, err := m.GetByPID(root, leader.Process.Pid); err != nil || got.Name != "c1" {
		t.Errorf("GetByPID: %v %v", got.Name, err)
	}
	if _, err := m.GetByPID(root, os.Getpid()); !errors.Is(err, ErrNoMachineForPID) {
		t.Errorf("GetByPID(self) = %v", err)
	}
	if len(m.List()) != 2 || m.List()[0].Name != HostName {
		t.Errorf("List: %+v", m.List())
	}

	// Leader exit finalizes.
	leader.Process.Kill()
	leader.Wait()
	if ev := <-events; ev.Kind != MachineRemoved || ev.Name != "c1" {
		t.Errorf("event %+v", ev)
	}
	if _, err := m.Get(root, Selector{Name: "c1"}); !errors.Is(err, ErrNoSuchMachine) {
		t.Errorf("Get after leader exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.StateDir, "c1")); !os.IsNotExist(err) {
		t.Errorf("state file kept: %v", err)
	}
}

func TestRegisterRefusals(t *testing.T) {
	m := newTestManager(t)
	a, b := startSleep(t), startSleep(t)
	ctx := context.Background()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "a", Class: "container", Leader: a.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "a", Class: "vm", Leader: b.Process.Pid}); !errors.Is(err, ErrMachineExists) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "b", Class: "container", Leader: a.Process.Pid}); err == nil {
		t.Error("same leader twice accepted")
	} else if ia, ok := AsInvalidArg(err); !ok || ia.Field != "leader" {
		t.Errorf("same leader: %v", err)
	}
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "c", Class: "container", Leader: a.Process.Pid + 1000000}); err == nil {
		t.Error("nonexistent leader accepted")
	}
	got, err := m.Get(root, Selector{Name: "a"})
	if err != nil || got.Leader.PID != a.Process.Pid || got.Class != ClassContainer {
		t.Errorf("existing machine disturbed: %+v %v", got, err)
	}
}

func TestUnprivilegedAuthorization(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	l := startSleep(t)
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "r", Class: "container", Leader: l.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	user := Caller{UID: 4242, GID: 4242, PIDFD: -1}
	if _, err := m.Register(ctx, user, RegisterRequest{Name: "x", Class: "container", Leader: startSleep(t).Process.Pid}); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("registering root's process: %v", err)
	}
	for name, op := range map[string]func() error{
		"unregister": func() error { return m.Unregister(ctx, user, Selector{Name: "r"}) },
		"terminate":  func() error { return m.Terminate(ctx, user, Selector{Name: "r"}) },
		"kill":       func() error { return m.Kill(ctx, user, Selector{Name: "r"}, "all", 15) },
	} {
		if err := op(); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%s by a stranger: %v", name, err)
		}
	}
	if l.ProcessState != nil || syscall.Kill(l.Process.Pid, 0) != nil {
		t.Error("leader harmed")
	}
	// The owner passes.
	owner := Caller{UID: 4242, PIDFD: -1}
	m.mu.Lock()
	m.machines.get("r").uid = 4242
	m.mu.Unlock()
	if err := m.Unregister(ctx, owner, Selector{Name: "r"}); err != nil {
		t.Errorf("owner unregister: %v", err)
	}
}

// recordingAuthorizer answers like an authority and remembers what it was asked.
type recordingAuthorizer struct {
	calls []Caller
	err   error
}

func (a *recordingAuthorizer) Check(_ context.Context, c Caller, _ string, _ map[string]string) error {
	a.calls = append(a.calls, c)
	return a.err
}

// The Authorizer sees the caller exactly as the transport built it, bus name
// and interactivity included.
func TestAuthorizerSeesCaller(t *testing.T) {
	authz := &recordingAuthorizer{err: ErrInteractiveAuth}
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx := context.Background()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "r", Class: "container", Leader: startSleep(t).Process.Pid}); err != nil {
		t.Fatal(err)
	}
	user := Caller{UID: 4242, PIDFD: -1, Interactive: true, BusName: ":1.42"}
	if err := m.Terminate(ctx, user, Selector{Name: "r"}); !errors.Is(err, ErrInteractiveAuth) {
		t.Fatalf("terminate: %v", err)
	}
	if len(authz.calls) != 1 || authz.calls[0] != user {
		t.Fatalf("authorizer asked with %+v", authz.calls)
	}
}

func TestRestoreDropsDeadLeaders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "machines")
	m1, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	live, dead := startSleep(t), startSleep(t)
	ctx := context.Background()
	for name, l := range map[string]*exec.Cmd{"live": live, "dead": dead} {
		if _, err := m1.Register(ctx, root, RegisterRequest{Name: name, Class: "container", Leader: l.Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	m1.Close()
	dead.Process.Kill()
	dead.Wait()

	m2, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	restored, dropped := m2.Restore()
	if restored != 1 || dropped != 1 {
		t.Errorf("restored %d dropped %d", restored, dropped)
	}
	if _, err := m2.Get(root, Selector{Name: "live"}); err != nil {
		t.Errorf("live lost: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dead")); !os.IsNotExist(err) {
		t.Errorf("dead record kept: %v", err)
	}
}

func BenchmarkRegisterUnregister(b *testing.B) {
	m, err := New(Config{StateDir: filepath.Join(b.TempDir(), "machines")})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	cmd := exec.Command("sleep", "1000")
	cmd.Start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Register(ctx, root, RegisterRequest{Name: "bench", Class: "container", Leader: cmd.Process.Pid}); err != nil {
			b.Fatal(err)
		}
		if err := m.Unregister(ctx, root, Selector{Name: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// List is in name order however the registry changed since the last listing.
func TestListOrder(t *testing.T) {
	m := newTestManager(t)
	names := func() []string {
		var out []string
		for _, mi := range m.List() {
			out = append(out, mi.Name)
		}
		return out
	}
	want := func(exp ...string) {
		t.Helper()
		if got := names(); !slices.Equal(got, exp) {
			t.Fatalf("List: %v, want %v", got, exp)
		}
	}
	register := func(name string) {
		t.Helper()
		if _, err := m.Register(context.Background(), root, RegisterRequest{Name: name, Class: "container", Leader: startSleep(t).Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	want(HostName)
	brief := func() []string {
		var out []string
		for _, b := range m.ListBrief() {
			out = append(out, b.Name)
		}
		return out
	}
	for _, n := range []string{"m", "b", "z", "a"} {
		register(n)
	}
	want(HostName, "a", "b", "m", "z")
	want(HostName, "a", "b", "m", "z") // from the kept order
	if err := m.Unregister(context.Background(), root, Selector{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	want(HostName, "a", "m", "z")
	register("c")
	want(HostName, "a", "c", "m", "z")
	if got := brief(); !slices.Equal(got, names()) {
		t.Errorf("ListBrief %v, List %v", got, names())
	}
	if b := m.ListBrief()[1]; b.Class != "container" || b.Name != "a" {
		t.Errorf("ListBrief entry %+v", b)
	}
}

// A supervisor recorded without a pidfd id (a caller known only by PID, or a
// state file from upstream 252) may since have been recycled: Kill refuses it
// rather than signal whatever process now has that PID.
func TestKillSupervisorWithoutPidfdID(t *testing.T) {
	m := newTestManager(t)
	leader := startSleep(t)
	bystander := startSleep(t)
	caller := Caller{UID: 0, PIDFD: -1, PID: bystander.Process.Pid}
	if _, err := m.Register(context.Background(), caller, RegisterRequest{Name: "c1", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	mi, err := m.Get(root, Selector{Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if mi.Supervisor.PID != bystander.Process.Pid || mi.Supervisor.PIDFDID != 0 {
		t.Fatalf("supervisor recorded as %+v", mi.Supervisor)
	}
	err = m.Kill(context.Background(), root, Selector{Name: "c1"}, "supervisor", int(syscall.SIGKILL))
	if !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("Kill supervisor without pidfd id = %v, want ErrNoSuchProcess", err)
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("bystander was signalled: %v", err)
	}
	var ws syscall.WaitStatus
	if pid, _ := syscall.Wait4(bystander.Process.Pid, &ws, syscall.WNOHANG, nil); pid != 0 {
		t.Errorf("bystander exited: %v", ws)
	}
}

// A machine that goes before its leader leaves nothing behind in the exit
// watcher: registering the same live leader again and again must not grow
// the daemon (every unprivileged user can do that with a process of their own).
func TestUnregisterForgetsLeaderWatch(t *testing.T) {
	m := newTestManager(t)
	leader := startSleep(t)
	ctx := context.Background()
	for range 20 {
		if _, err := m.Register(ctx, root, RegisterRequest{Name: "c1", Class: "container", Leader: leader.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if err := m.Unregister(ctx, root, Selector{Name: "c1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "c2", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := m.Terminate(ctx, root, Selector{Name: "c2"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c2 gone", func() bool { _, err := m.Get(root, Selector{Name: "c2"}); return err != nil })
	if n := m.exits.watching(); n != 0 {
		t.Errorf("exit watcher holds %d callbacks with no machine registered", n)
	}
}

// Config.Changed hears of every machine that comes, and of every one that
// leaves, whichever way it goes.
func TestChangedHookCalled(t *testing.T) {
	var changed atomic.Int32
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), Changed: func() { changed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	leader := startSleep(t)
	ctx := context.Background()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "c1", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := m.Unregister(ctx, root, Selector{Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "c2", Class: "container", Leader: leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	leader.Process.Kill()
	leader.Wait()
	waitFor(t, "c2 gone with its leader", func() bool { return changed.Load() == 4 })
}

// Watching a leader costs no allocation: every machine's watch is a slot
// pointing at the machine, not a closure of its own, and the epoll_ctl goes
// through the watcher's one callback.
func TestWatchLeaderAllocations(t *testing.T) {
	m := newTestManager(t)
	leader := startSleep(t)
	if _, err := m.Register(context.Background(), root, RegisterRequest{Name: "w1", Class: "container", Leader: leader.Process.Pid, Service: "svc"}); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	mc := m.machines.get("w1")
	m.mu.Unlock()
	var epfd int
	epollRC, err := m.exits.file.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	epollRC.Control(func(fd uintptr) { epfd = int(fd) })
	rewatch := func() {
		m.mu.Lock()
		m.exits.forget(mc.exitWatch)
		// What closing the pidfd does when a machine goes.
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, mc.leader.FD(), nil); err != nil {
			t.Fatal(err)
		}
		m.watchLeader(mc)
		m.mu.Unlock()
	}
	rewatch()
	if allocs := testing.AllocsPerRun(100, rewatch); allocs > 0 {
		t.Errorf("%.1f allocations per leader watch", allocs)
	}
	if n := m.exits.watching(); n != 1 {
		t.Errorf("%d watches pending, want 1", n)
	}
	leader.Process.Kill()
	waitFor(t, "the machine goes with its leader", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.machines.get("w1") == nil
	})
}

// subscribe turns a Watch into a channel of registry events, for tests that
// wait for one event after another.
func subscribe(m *Manager, buf int) (<-chan Event, func()) {
	_, w := m.Watch(buf)
	ch := make(chan Event)
	stop := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-stop:
				return
			case <-w.Ready():
			}
			evs, end := w.Take()
			for _, ev := range evs {
				select {
				case ch <- *ev:
				case <-stop:
					return
				}
			}
			if end != nil {
				return
			}
		}
	}()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.Cancel()
			close(stop)
		})
	}
}
