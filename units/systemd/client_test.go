package systemd

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/machined-go/machined/service"
	"golang.org/x/sys/unix"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// setup starts a private bus with the fake manager and returns a client on its
// own connection.
func setup(t *testing.T) (*Client, *fakeManager, string) {
	c, f, _, addr := setupTap(t)
	return c, f, addr
}

func setupTap(t *testing.T) (*Client, *fakeManager, *wireTap, string) {
	t.Helper()
	addr := privateBus(t)
	f := newFakeManager(t, addr)
	tap := &wireTap{}
	conn, err := dbus.Connect(addr, dbus.WithOutgoingInterceptor(tap.intercept))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := New(conn, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(c.wg.Wait)
	return c, f, tap, addr
}

// leader starts a sleep and returns its pid and a pidfd for it.
func leader(t *testing.T) (int, int) {
	t.Helper()
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return cmd.Process.Pid, fd
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// propSummary renders "Name:signature" for every property.
func propSummary(props []property) []string {
	var out []string
	for _, p := range props {
		out = append(out, p.Name+":"+p.Value.Signature().String())
	}
	return out
}

func propValue(props []property, name string) any {
	for _, p := range props {
		if p.Name == name {
			return p.Value.Value()
		}
	}
	return nil
}

// WaitAvailable returns once the manager owns its name, whether it did before
// the call or only while it waits, and false when its context ends first.
func TestWaitAvailable(t *testing.T) {
	addr := privateBus(t)
	conn := connect(t, addr)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if WaitAvailable(ctx, conn) {
		t.Fatal("WaitAvailable with an ended context and no owner")
	}

	// The waiter has joined the bus when its match is in place; the owner
	// comes after that.
	waiter := connect(t, addr)
	done := make(chan bool, 1)
	go func() { done <- WaitAvailable(context.Background(), waiter) }()
	watch := connect(t, addr)
	for !hasMatchOf(t, watch, waiter.Names()[0]) {
		select {
		case got := <-done:
			t.Fatalf("WaitAvailable returned %v with no owner", got)
		case <-time.After(time.Millisecond):
		}
	}
	newFakeManager(t, addr)
	if !<-done {
		t.Fatal("WaitAvailable did not see the manager take its name")
	}

	// Already owned: at once.
	if !WaitAvailable(context.Background(), conn) {
		t.Fatal("WaitAvailable with the name owned")
	}
}

// hasMatchOf reports whether the bus holds a NameOwnerChanged match rule of
// the connection named unique (GetConnectionMatchRules, dbus-daemon's
// Debug.Stats interface).
func hasMatchOf(t *testing.T, conn *dbus.Conn, unique string) bool {
	t.Helper()
	var rules map[string][]string
	if err := conn.BusObject().Call("org.freedesktop.DBus.Debug.Stats.GetAllMatchRules", 0).Store(&rules); err != nil {
		t.Fatalf("GetAllMatchRules: %v", err)
	}
	for _, r := range rules[unique] {
		if strings.Contains(r, "member='NameOwnerChanged'") && strings.Contains(r, "arg0='"+busName+"'") {
			return true
		}
	}
	return false
}

func TestAvailable(t *testing.T) {
	addr := privateBus(t)
	conn := connect(t, addr)
	if Available(context.Background(), conn) {
		t.Fatal("Available before anyone owns org.freedesktop.systemd1")
	}
	newFakeManager(t, addr)
	if !Available(context.Background(), conn) {
		t.Fatal("not Available while the fake owns the name")
	}
	if name := New(conn, nil).Name(); name != "systemd" {
		t.Fatalf("Name = %q", name)
	}
}

func TestCreateScopeProperties(t *testing.T) {
	c, f, tap, _ := setupTap(t)
	pid, fd := leader(t)
	req := service.ScopeRequest{
		Unit: `machine-fedora\x2d40.scope`, Slice: "machine.slice", Description: "Container fedora-40",
		LeaderPID: pid, LeaderPIDFD: fd, UID: 1000,
		Properties: []service.UnitProperty{
			{Name: "Controller", Value: service.StringValue(":1.42")},
			{Name: "DevicePolicy", Value: service.StringValue("closed")},
			{Name: "DeviceAllow", Value: service.DeviceAccessListValue{{Path: "/dev/net/tun", Access: "rwm"}, {Path: "char-pts", Access: "rw"}}},
			{Name: "KillSignal", Value: service.Int32Value(9)},
		},
	}
	if err := c.CreateScope(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	props, aux, mode := f.props[0], f.aux[0], f.mode[0]
	f.mu.Unlock()
	tap.mu.Lock()
	sent, fdPID := tap.props[0], tap.fdPID
	tap.mu.Unlock()
	want := []string{"Slice:s", "Description:s", "PIDFDs:ah", "Delegate:b", "CollectMode:s", "AddRef:b", "TasksMax:t", "User:s",
		"Controller:s", "DevicePolicy:s", "DeviceAllow:a(ss)", "KillSignal:i"}
	if got := propSummary(props); !reflect.DeepEqual(got, want) {
		t.Fatalf("properties on the wire\n got %v\nwant %v", got, want)
	}
	if got := propSummary(sent); !reflect.DeepEqual(got, want) {
		t.Fatalf("properties sent\n got %v\nwant %v", got, want)
	}
	if got := propValue(sent, "PIDFDs"); !reflect.DeepEqual(got, []dbus.UnixFD{dbus.UnixFD(fd)}) {
		t.Errorf("PIDFDs = %v, want the leader's pidfd %d", got, fd)
	}
	for name, want := range map[string]any{
		"Slice": "machine.slice", "Description": "Container fedora-40", "Delegate": true,
		"CollectMode": "inactive-or-failed", "AddRef": true, "TasksMax": uint64(16384), "User": "1000",
		"Controller": ":1.42", "DevicePolicy": "closed", "KillSignal": int32(9),
	} {
		if got := propValue(props, name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	if len(fdPID) != 1 || fdPID[0] != pid {
		t.Errorf("PIDFDs referred to %v, want [%d]", fdPID, pid)
	}
	if mode != "fail" || len(aux) != 0 {
		t.Errorf("mode %q, aux %v", mode, aux)
	}

	// Root registrant, no pidfd: no User, PIDs instead of PIDFDs. Subscribe
	// happened once for both calls.
	req2 := service.ScopeRequest{Unit: "machine-b.scope", Slice: "machine.slice", Description: "Virtual Machine b", LeaderPID: pid, LeaderPIDFD: -1}
	if err := c.CreateScope(ctxT(t), req2); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	props = f.props[1]
	f.mu.Unlock()
	want = []string{"Slice:s", "Description:s", "PIDs:au", "Delegate:b", "CollectMode:s", "AddRef:b", "TasksMax:t"}
	if got := propSummary(props); !reflect.DeepEqual(got, want) {
		t.Fatalf("properties\n got %v\nwant %v", got, want)
	}
	if got := propValue(props, "PIDs"); !reflect.DeepEqual(got, []uint32{uint32(pid)}) {
		t.Errorf("PIDs = %v", got)
	}
	subs := 0
	for _, call := range f.Calls() {
		if call == "Subscribe" {
			subs++
		}
	}
	if subs != 1 {
		t.Errorf("Subscribe called %d times, want 1", subs)
	}
}

// A property the core would have refused (no value, a name off the
// whitelist, a value of another type than its name takes) is not sent.
func TestCreateScopeBadProperty(t *testing.T) {
	c, f, _ := setup(t)
	for _, p := range []service.UnitProperty{
		{Name: "KillSignal"},
		{Name: "Bad", Value: service.StringValue("x")},
		{Name: "KillSignal", Value: service.StringValue("9")},
		{Name: "TasksMax", Value: service.Int32Value(9)},
	} {
		req := service.ScopeRequest{Unit: "machine-x.scope", LeaderPID: 1, LeaderPIDFD: -1, Properties: []service.UnitProperty{p}}
		if err := c.CreateScope(ctxT(t), req); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("CreateScope with property %s %#v = %v, want EINVAL", p.Name, p.Value, err)
		}
	}
	for _, call := range f.Calls() {
		if strings.HasPrefix(call, "StartTransientUnit") {
			t.Fatal("StartTransientUnit sent despite a bad property")
		}
	}
}

func TestCreateScopeJobRemovedBeforeReply(t *testing.T) {
	c, f, _ := setup(t)
	f.set(func(c *fakeConfig) { c.emitBefore = true })
	pid, _ := leader(t)
	req := service.ScopeRequest{Unit: "machine-early.scope", LeaderPID: pid, LeaderPIDFD: -1}
	start := time.Now()
	if err := c.CreateScope(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("CreateScope took %v", d)
	}
}

func TestCreateScopeJobFailed(t *testing.T) {
	c, f, _ := setup(t)
	f.set(func(c *fakeConfig) { c.result = "failed" })
	pid, _ := leader(t)
	err := c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-bad.scope", LeaderPID: pid, LeaderPIDFD: -1})
	if err == nil || err.Error() != "start job for unit machine-bad.scope failed with 'failed'" {
		t.Fatalf("CreateScope = %v", err)
	}
	c.wg.Wait()
	calls := f.Calls()
	if last := calls[len(calls)-1]; last != "UnrefUnit machine-bad.scope" {
		t.Fatalf("after a failed job: calls %v, want the reference dropped", calls)
	}
	for _, call := range calls {
		if strings.HasPrefix(call, "StopUnit") {
			t.Fatalf("failed scope stopped: %v", calls)
		}
	}
}

// A JobRemoved for our job from someone other than the manager is ignored.
func TestCreateScopeIgnoresForeignJobRemoved(t *testing.T) {
	c, f, addr := setup(t)
	spoofer := connect(t, addr)
	f.set(func(c *fakeConfig) {
		c.result = "canceled"
		c.beforeReply = func(job dbus.ObjectPath) {
			spoofer.Emit(managerPath, managerIf+".JobRemoved", uint32(1), job, "machine-spoof.scope", "done")
		}
	})
	pid, _ := leader(t)
	err := c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-spoof.scope", LeaderPID: pid, LeaderPIDFD: -1})
	if err == nil || !strings.Contains(err.Error(), "failed with 'canceled'") {
		t.Fatalf("CreateScope = %v, want the manager's 'canceled'", err)
	}
}

func TestCreateScopePIDFDFallback(t *testing.T) {
	for _, name := range []string{errUnknownProperty, errPropertyReadOnly, errInvalidArgs} {
		t.Run(strings.TrimPrefix(name, "org.freedesktop.DBus.Error."), func(t *testing.T) {
			c, f, tap, _ := setupTap(t)
			f.set(func(c *fakeConfig) { c.rejectPIDFDs = name })
			pid, fd := leader(t)
			if err := c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-fb.scope", LeaderPID: pid, LeaderPIDFD: fd}); err != nil {
				t.Fatal(err)
			}
			tap.mu.Lock()
			if len(tap.fdPID) != 1 || tap.fdPID[0] != pid {
				t.Errorf("first attempt's pidfd referred to %v, want [%d]", tap.fdPID, pid)
			}
			tap.mu.Unlock()
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.props) != 2 {
				t.Fatalf("%d StartTransientUnit calls, want 2", len(f.props))
			}
			if got := propSummary(f.props[0])[2]; got != "PIDFDs:ah" {
				t.Errorf("first attempt sent %s", got)
			}
			if got := propSummary(f.props[1])[2]; got != "PIDs:au" {
				t.Errorf("retry sent %s", got)
			}
			if got := propValue(f.props[1], "PIDs"); !reflect.DeepEqual(got, []uint32{uint32(pid)}) {
				t.Errorf("PIDs = %v", got)
			}
		})
	}
}

func TestCreateScopeErrors(t *testing.T) {
	c, f, _ := setup(t)
	pid, fd := leader(t)
	f.set(func(c *fakeConfig) { c.startErr = errUnitExists })
	err := c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-dup.scope", LeaderPID: pid, LeaderPIDFD: fd})
	if !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("UnitExists gave %v, want EEXIST", err)
	}
	f.set(func(c *fakeConfig) { c.startErr = "org.freedesktop.DBus.Error.AccessDenied" })
	err = c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-dup.scope", LeaderPID: pid, LeaderPIDFD: fd})
	if errorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Fatalf("AccessDenied gave %v", err)
	}
	f.mu.Lock()
	n := len(f.props)
	f.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d StartTransientUnit calls; a non-PIDFD error must not be retried", n)
	}
}

func TestCreateScopeTimeout(t *testing.T) {
	c, f, _ := setup(t)
	f.set(func(c *fakeConfig) { c.noJobRemoved = true })
	pid, _ := leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.CreateScope(ctx, service.ScopeRequest{Unit: "machine-slow.scope", LeaderPID: pid, LeaderPIDFD: -1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CreateScope = %v, want deadline exceeded", err)
	}
	c.wg.Wait()
	calls := f.Calls()
	if got := calls[len(calls)-2:]; !reflect.DeepEqual(got, []string{"StopUnit machine-slow.scope fail", "UnrefUnit machine-slow.scope"}) {
		t.Fatalf("after timeout: %v", calls)
	}
}

func TestSubscribe(t *testing.T) {
	c, f, _ := setup(t)
	pid, _ := leader(t)
	f.set(func(c *fakeConfig) { c.subscribeErr = errAlreadySubscribed })
	if err := c.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-a.scope", LeaderPID: pid, LeaderPIDFD: -1}); err != nil {
		t.Fatalf("AlreadySubscribed must be tolerated: %v", err)
	}

	c2, f2, _ := setup(t)
	f2.set(func(c *fakeConfig) { c.subscribeErr = "org.freedesktop.DBus.Error.AccessDenied" })
	if err := c2.CreateScope(ctxT(t), service.ScopeRequest{Unit: "machine-a.scope", LeaderPID: pid, LeaderPIDFD: -1}); err == nil {
		t.Fatal("CreateScope succeeded without a subscription")
	}
}

func TestStopKillRelease(t *testing.T) {
	c, f, _ := setup(t)
	ctx := ctxT(t)
	if err := c.Stop(ctx, "machine-a.scope"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{errNoSuchUnit, errLoadFailed} {
		f.set(func(c *fakeConfig) { c.stopErr = name })
		if err := c.Stop(ctx, "machine-gone.scope"); err != nil {
			t.Fatalf("Stop with %s = %v, want nil", name, err)
		}
	}
	f.set(func(c *fakeConfig) { c.stopErr = "org.freedesktop.DBus.Error.AccessDenied" })
	if err := c.Stop(ctx, "machine-a.scope"); errorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Fatalf("Stop = %v", err)
	}

	if err := c.Kill(ctx, "machine-a.scope", "", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, "machine-a.scope", "payload/x", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.set(func(c *fakeConfig) { c.killErr = errNoSuchUnit })
	if err := c.Kill(ctx, "machine-gone.scope", "", syscall.SIGTERM); !errors.Is(err, service.ErrNoSuchProcess) {
		t.Fatalf("Kill of unknown unit = %v, want ErrNoSuchProcess", err)
	}
	c.Release("machine-a.scope")
	c.wg.Wait()

	want := []string{
		"StopUnit machine-a.scope fail",
		"StopUnit machine-gone.scope fail",
		"StopUnit machine-gone.scope fail",
		"StopUnit machine-a.scope fail",
		"KillUnit machine-a.scope all 15",
		"KillUnitSubgroup machine-a.scope cgroup payload/x 9",
		"KillUnit machine-gone.scope all 15",
		"UnrefUnit machine-a.scope",
	}
	if got := f.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls\n got %q\nwant %q", got, want)
	}
}

func TestCallTimeout(t *testing.T) {
	c, f, _ := setup(t)
	c.CallTimeout = 200 * time.Millisecond
	f.set(func(c *fakeConfig) { c.block = 3 * time.Second })
	start := time.Now()
	err := c.Stop(context.Background(), "machine-a.scope")
	if err == nil {
		t.Fatal("Stop against a hung manager succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop returned after %v, want about the 200ms call timeout", d)
	}
}
