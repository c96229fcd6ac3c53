package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func dialFake(t *testing.T, d *fakeDaemon) *Client {
	t.Helper()
	c, err := Dial(context.Background(), d.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestErrorsMatchSentinelsAndErrno(t *testing.T) {
	replies := map[string]struct {
		name   string
		params any
	}{
		"a": {"io.systemd.Machine.NoSuchMachine", map[string]any{}},
		"b": {"org.varlink.service.InvalidParameter", map[string]any{"parameter": "vSockCid"}},
		"c": {"io.systemd.System", map[string]any{"errno": int(syscall.ENOBUFS), "origin": "linux"}},
		"d": {"org.varlink.service.PermissionDenied", map[string]any{}},
		"e": {"io.systemd.Machine.NotSupported", map[string]any{}},
		"f": {"org.varlink.service.ExpectedMore", map[string]any{}},
		"g": {"io.systemd.InteractiveAuthenticationRequired", map[string]any{}},
	}
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		var p struct{ Name string }
		json.Unmarshal(call.Parameters, &p)
		r := replies[p.Name]
		fc.reply(r.params, r.name, false)
	})
	c := dialFake(t, d)
	ctx := context.Background()

	err := c.Terminate(ctx, ByName("a"))
	if !errors.Is(err, ErrNoSuchMachine) || errors.Is(err, ErrMachineExists) || errors.Is(err, syscall.ENOENT) {
		t.Fatalf("NoSuchMachine: %v", err)
	}
	err = c.Terminate(ctx, ByName("b"))
	var e *Error
	if !errors.Is(err, ErrInvalidParameter) || !errors.As(err, &e) || e.Parameter() != "vSockCid" || e.Name != "org.varlink.service.InvalidParameter" {
		t.Fatalf("InvalidParameter: %v", err)
	}
	err = c.Terminate(ctx, ByName("c"))
	if !errors.Is(err, syscall.ENOBUFS) || !errors.Is(err, ErrSystem) || errors.Is(err, syscall.EPERM) {
		t.Fatalf("System ENOBUFS: %v", err)
	}
	if !errors.Is(c.Terminate(ctx, ByName("d")), ErrPermissionDenied) {
		t.Fatal("PermissionDenied not matched")
	}
	if !errors.Is(c.Terminate(ctx, ByName("e")), ErrNotSupported) {
		t.Fatal("NotSupported not matched")
	}
	if err := c.Terminate(ctx, ByName("f")); !errors.Is(err, ErrExpectedMore) || errors.Is(err, ErrNotSupported) {
		t.Fatalf("ExpectedMore: %v", err)
	}
	if !errors.Is(c.Terminate(ctx, ByName("g")), ErrInteractiveAuthRequired) {
		t.Fatal("InteractiveAuthenticationRequired not matched")
	}
	// Error replies leave the connection at a message boundary: it is kept.
	if n := d.accepts.Load(); n != 1 {
		t.Fatalf("%d connections for sequential calls, want 1", n)
	}
}

// A reply's fd index is resolved to the *os.File that came with it.
func TestOpenReturnsTheReplyFD(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	nul, _ := os.Open(os.DevNull)
	defer nul.Close()
	// Raw numbers: the files are closed by the test while the fake is idle.
	prFD, pwFD, nulFD := int(pr.Fd()), int(pw.Fd()), int(nul.Fd())
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		switch call.Method {
		case "io.systemd.Machine.Open":
			// Two fds; the reply names the second.
			fc.reply(map[string]any{"ptyFileDescriptor": 1, "ptyPath": "/dev/pts/7"}, "", false, prFD, pwFD)
		case "io.systemd.Machine.OpenRootDirectory":
			fc.reply(map[string]any{"fileDescriptor": 3}, "", false, nulFD)
		}
	})
	c := dialFake(t, d)
	f, path, err := c.Open(context.Background(), ByName("x"), OpenRequest{Mode: OpenShell, User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if path != "/dev/pts/7" {
		t.Fatalf("ptyPath %q", path)
	}
	pw.Close()
	f.Write([]byte("hi"))
	f.Close()
	b, _ := io.ReadAll(pr)
	if string(b) != "hi" {
		t.Fatalf("read %q through the returned fd", b)
	}
	call := <-d.calls
	var p map[string]any
	json.Unmarshal(call.Parameters, &p)
	if p["mode"] != "shell" || p["user"] != "root" || p["name"] != "x" {
		t.Fatalf("Open sent %s", call.Parameters)
	}

	_, err = c.OpenRootDirectory(context.Background(), ByName("x"))
	var re *ReplyError
	if !errors.As(err, &re) || re.Field != "fileDescriptor" {
		t.Fatalf("index past the fds: %v", err)
	}
}

// Sequential calls share one connection; one the daemon closed while idle is
// replaced without failing the call.
func TestConnectionReuseAndIdleClose(t *testing.T) {
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		if call.Method == "io.systemd.Machine.Unregister" {
			fc.reply(map[string]any{}, "", false)
			fc.c.Close()
			return
		}
		fc.reply(map[string]any{}, "", false)
	})
	c := dialFake(t, d)
	ctx := context.Background()
	for range 3 {
		if err := c.Terminate(ctx, ByName("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.accepts.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential calls", n)
	}
	if err := c.Unregister(ctx, ByName("x")); err != nil {
		t.Fatal(err)
	}
	// The daemon has hung up; wait until the client's socket sees it.
	for !errors.Is(peekEOF(c), io.EOF) {
		time.Sleep(time.Millisecond)
	}
	if err := c.Terminate(ctx, ByName("x")); err != nil {
		t.Fatalf("call after the daemon closed the idle connection: %v", err)
	}
	if n := d.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// peekEOF is io.EOF once the idle connection's peer has closed it.
func peekEOF(c *Client) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle == nil || c.idle.usable() {
		return nil
	}
	return io.EOF
}

// A call whose context ends gives up, and the late reply does not end up as the
// answer of the next call.
func TestDeadlineAbandonsTheConnection(t *testing.T) {
	late := make(chan fakeConn, 1)
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		if call.Method == "io.systemd.Machine.Kill" {
			late <- fc
			return
		}
		fc.reply(map[string]any{"uid": 5}, "", false)
	})
	c := dialFake(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Kill(ctx, ByName("x"), KillLeader, 15)
	if err == nil {
		t.Fatal("Kill without a reply succeeded")
	}
	var e *Error
	if errors.As(err, &e) {
		t.Fatalf("deadline reported as a daemon error: %v", err)
	}
	(<-late).reply(map[string]any{}, "io.systemd.Machine.NoSuchMachine", false)
	ids, _, err := c.MapTo(context.Background(), UserID(100000))
	if err != nil || ids.UID == nil || *ids.UID != 5 {
		t.Fatalf("next call got %+v, %v", ids, err)
	}
	if n := d.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want a new one after the abandoned call", n)
	}
}

func TestListStreamsAndStopsEarly(t *testing.T) {
	var empty atomic.Bool
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		if call.Method != "io.systemd.Machine.List" {
			fc.reply(map[string]any{}, "", false)
			return
		}
		if !call.More {
			fc.reply(map[string]any{}, "org.varlink.service.ExpectedMore", false)
			return
		}
		if empty.Load() {
			fc.reply(map[string]any{}, "io.systemd.Machine.NoSuchMachine", false)
			return
		}
		for i, n := range []string{".host", "a", "b"} {
			fc.reply(map[string]any{"name": n, "class": "container", "UID": 7}, "", i < 2)
		}
	})
	c := dialFake(t, d)
	ctx := context.Background()
	var names []string
	for m, err := range c.List(ctx, MetadataNo) {
		if err != nil {
			t.Fatal(err)
		}
		if m.UID == nil || *m.UID != 7 {
			t.Fatalf("UID of %s not decoded", m.Name)
		}
		names = append(names, m.Name)
	}
	if len(names) != 3 || names[2] != "b" {
		t.Fatalf("listed %v", names)
	}
	if n := d.accepts.Load(); n != 1 {
		t.Fatalf("a finished stream's connection was not reused: %d", n)
	}
	for range c.List(ctx, MetadataNo) {
		break
	}
	// The stream was cut: its connection still has replies in flight, so the
	// next call must not read them.
	if err := c.Terminate(ctx, ByName("a")); err != nil {
		t.Fatal(err)
	}
	if n := d.accepts.Load(); n != 2 {
		t.Fatalf("%d connections after a cut stream, want 2", n)
	}
	empty.Store(true)
	for m, err := range c.List(ctx, MetadataNo) {
		t.Fatalf("empty registry yielded %v %v", m, err)
	}
}

func TestRegisterSendsThePidfdsProcess(t *testing.T) {
	d := startFake(t, func(fc fakeConn, call fakeCall) { fc.reply(map[string]any{}, "", false) })
	c := dialFake(t, d)
	cmd := exec.Command("sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skip("no pidfd_open:", err)
	}
	pidfd := os.NewFile(uintptr(pfd), "pidfd")
	defer pidfd.Close()
	cid := uint32(42)
	err = c.Register(context.Background(), RegisterRequest{
		Name: "vm1", Class: ClassVM, Leader: pidfd, VSockCID: &cid, IfIndices: []int{3},
		ControlAddress: "unix:/run/x", AllocateUnit: true, SSHAddress: "10.0.0.1:22",
	})
	if err != nil {
		t.Fatal(err)
	}
	call := <-d.calls
	var p map[string]json.RawMessage
	json.Unmarshal(call.Parameters, &p)
	if _, ok := p["leader"]; ok {
		t.Fatalf("plain leader sent beside the pidfd's process: %s", call.Parameters)
	}
	var id ProcessID
	json.Unmarshal(p["leaderProcessId"], &id)
	if id.PID != cmd.Process.Pid {
		t.Fatalf("leaderProcessId %s, want pid %d", p["leaderProcessId"], cmd.Process.Pid)
	}
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if unix.Fstatfs(pfd, &sfs) == nil && int64(sfs.Type) == unix.PID_FS_MAGIC {
		unix.Fstat(pfd, &st)
		if id.PidfdID != st.Ino {
			t.Fatalf("pidfdId %d, want the pidfd's inode %d", id.PidfdID, st.Ino)
		}
	}
	for k, want := range map[string]string{"vSockCid": "42", "ifIndices": "[3]", "allocateUnit": "true",
		"controlAddress": `"unix:/run/x"`, "sshAddress": `"10.0.0.1:22"`, "class": `"vm"`} {
		if string(p[k]) != want {
			t.Errorf("%s = %s, want %s", k, p[k], want)
		}
	}
	for _, k := range []string{"id", "service", "rootDirectory", "sshPrivateKeyPath", "allowInteractiveAuthentication"} {
		if _, ok := p[k]; ok {
			t.Errorf("unset field %s sent", k)
		}
	}

	cmd.Process.Kill()
	cmd.Wait()
	if err := c.Register(context.Background(), RegisterRequest{Name: "vm2", Class: ClassVM, Leader: pidfd}); !errors.Is(err, ErrLeaderExited) {
		t.Fatalf("Register with a dead pidfd: %v", err)
	}
	notPidfd, _ := os.Open(os.DevNull)
	defer notPidfd.Close()
	if _, err := PidfdProcess(notPidfd); err == nil {
		t.Fatal("PidfdProcess accepted /dev/null")
	}
}

func TestSubscribeStreamsUntilBacklogOrCancel(t *testing.T) {
	d := startFake(t, func(fc fakeConn, call fakeCall) {
		var p SubscribeOptions
		json.Unmarshal(call.Parameters, &p)
		fc.reply(map[string]any{"event": "existing", "machine": map[string]any{"name": ".host", "class": "host"}}, "", true)
		fc.reply(map[string]any{"event": "snapshotComplete"}, "", true)
		fc.reply(map[string]any{"event": "removed", "machine": map[string]any{"name": "a", "class": "vm", "state": "closing"}, "reason": "terminated"}, "", true)
		if p.Name == "stall" {
			fc.reply(map[string]any{"limit": 4096}, "io.github.machinedgo.MachineEvents.BacklogExceeded", false)
		}
		// Otherwise the stream stays open until the client hangs up.
	})
	c := dialFake(t, d)
	var kinds []EventKind
	var last error
	for ev, err := range c.Subscribe(context.Background(), SubscribeOptions{Name: "stall", Kinds: []EventKind{EventRemoved}}) {
		if err != nil {
			last = err
			break
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == EventRemoved && (ev.Reason != RemovedTerminated || ev.Machine.State != StateClosing) {
			t.Fatalf("removed event %+v", ev)
		}
	}
	if len(kinds) != 3 || kinds[1] != EventSnapshotComplete || !errors.Is(last, ErrBacklogExceeded) {
		t.Fatalf("events %v, end %v", kinds, last)
	}
	call := <-d.calls
	if call.Method != "io.github.machinedgo.MachineEvents.Subscribe" || !call.More || string(call.Parameters) != `{"name":"stall","kinds":["removed"]}` {
		t.Fatalf("sent %s %s more=%v", call.Method, call.Parameters, call.More)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for _, err := range c.Subscribe(ctx, SubscribeOptions{}) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 3 {
			cancel()
		}
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("cancelled stream ended with %v", last)
	}
}

// Fds the daemon sends with a reply that has none are closed, not leaked.
func TestUnexpectedReplyFDsAreClosed(t *testing.T) {
	nul, _ := os.Open(os.DevNull)
	defer nul.Close()
	nulFD := int(nul.Fd())
	d := startFake(t, func(fc fakeConn, call fakeCall) { fc.reply(map[string]any{}, "", false, nulFD, nulFD, nulFD) })
	c := dialFake(t, d)
	// One call first, so that the connection it opens (and keeps idle) is
	// counted in before: only the replies' fds may not add up.
	if err := c.Terminate(context.Background(), ByName("x")); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	for range 5 {
		if err := c.Terminate(context.Background(), ByName("x")); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d fds open after 5 replies with 3 fds each, %d before", after, before)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
