package tests

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/machined-go/machined/client"
	"golang.org/x/sys/unix"
)

// The client library against the built daemon: the same calls the examples in
// client/example_test.go make, which need a daemon and so only compile there.

func openPidfd(t *testing.T, pid int) *os.File {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	t.Cleanup(func() { f.Close() })
	return f
}

func TestClientRegisterGetListAgainstDaemon(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	c := dialClient(t, d)
	ctx := context.Background()
	l := spawnLeader(t)
	cid := uint32(77)
	req := client.RegisterRequest{
		Name: "cl-full", ID: "0123456789abcdef0123456789abcdef", Service: "client-test", Class: client.ClassVM,
		Leader: openPidfd(t, l.pid), VSockCID: &cid, IfIndices: []int{1}, RootDirectory: "/",
		SSHAddress: "10.0.0.1:22", SSHPrivateKeyPath: "/etc/ssh/key", ControlAddress: "unix:/run/cl-full",
	}
	if err := c.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	m, err := c.Get(ctx, client.ByName("cl-full"), client.MetadataNo)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != req.ID || m.Service != req.Service || m.Class != client.ClassVM || m.VSockCID == nil || *m.VSockCID != 77 ||
		m.RootDirectory != "/" || m.SSHAddress != req.SSHAddress || m.SSHPrivateKeyPath != req.SSHPrivateKeyPath ||
		m.ControlAddress != req.ControlAddress || m.Leader == nil || m.Leader.PID != l.pid || m.UID == nil || *m.UID != 0 {
		t.Fatalf("machine as listed: %+v", m)
	}
	if byPID, err := c.Get(ctx, client.ByPID(l.pid), client.MetadataNo); err != nil || byPID.Name != "cl-full" {
		t.Fatalf("Get by the leader's pid: %+v %v", byPID, err)
	}
	if byProc, err := c.Get(ctx, client.ByProcess(*m.Leader), client.MetadataNo); err != nil || byProc.Name != "cl-full" {
		t.Fatalf("Get by the leader's ProcessId: %+v %v", byProc, err)
	}
	// A plain PID leader, and the list of both.
	l2 := spawnLeader(t)
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-pid", Class: client.ClassContainer, LeaderPID: l2.pid}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for m, err := range c.List(ctx, client.MetadataGraceful) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{".host", "cl-full", "cl-pid"}) {
		t.Fatalf("List: %v", names)
	}

	// The typed errors.
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-pid", Class: client.ClassContainer, LeaderPID: spawnLeader(t).pid}); !errors.Is(err, client.ErrMachineExists) {
		t.Errorf("second cl-pid: %v", err)
	}
	if _, err := c.Get(ctx, client.ByName("cl-none"), client.MetadataNo); !errors.Is(err, client.ErrNoSuchMachine) {
		t.Errorf("Get of no machine: %v", err)
	}
	bad := uint32(1)
	err = c.Register(ctx, client.RegisterRequest{Name: "cl-bad", Class: client.ClassVM, LeaderPID: spawnLeader(t).pid, VSockCID: &bad})
	var ce *client.Error
	if !errors.Is(err, client.ErrInvalidParameter) || !errors.As(err, &ce) || ce.Parameter() != "vSockCid" {
		t.Errorf("Register with vSockCid 1: %v", err)
	}
	// A VM has no terminal or root directory to give: NotSupported, after
	// every field was decoded strictly (an InvalidParameter here would be a
	// field the client names wrongly).
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-vm", Class: client.ClassVM, LeaderPID: spawnLeader(t).pid}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Open(ctx, client.ByName("cl-vm"), client.OpenRequest{
		Mode: client.OpenShell, User: "root", Path: "/bin/sh", Args: []string{"sh", "-l"}, Environment: []string{"TERM=vt100"},
	}); !errors.Is(err, client.ErrNotSupported) {
		t.Errorf("Open: %v", err)
	}
	if _, err := c.OpenRootDirectory(ctx, client.ByName("cl-vm")); !errors.Is(err, client.ErrNotSupported) {
		t.Errorf("OpenRootDirectory: %v", err)
	}

	// A pidfd of a process that has exited is refused before the call.
	l3 := spawnLeader(t)
	dead := openPidfd(t, l3.pid)
	l3.kill()
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-dead", Class: client.ClassContainer, Leader: dead}); !errors.Is(err, client.ErrLeaderExited) {
		t.Errorf("Register with a dead leader's pidfd: %v", err)
	}
}

// allocateUnit: the daemon makes the machine's scope (the cgroup backend here).
func TestClientAllocateUnitAgainstDaemon(t *testing.T) {
	needCgroup2(t)
	d := startDaemon(t, "--units", "cgroup", "--stop-timeout", "2s")
	c := dialClient(t, d)
	ctx := context.Background()
	l := spawnLeader(t)
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-unit", Class: client.ClassContainer, Leader: openPidfd(t, l.pid), AllocateUnit: true}); err != nil {
		t.Fatal(err)
	}
	m, err := c.Get(ctx, client.ByName("cl-unit"), client.MetadataNo)
	if err != nil || m.Unit != `machine-cl\x2dunit.scope` {
		t.Fatalf("unit of cl-unit: %q %v", m.Unit, err)
	}
	if err := c.Terminate(ctx, client.ByName("cl-unit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cl-unit goes", func() bool {
		_, err := c.Get(ctx, client.ByName("cl-unit"), client.MetadataNo)
		return errors.Is(err, client.ErrNoSuchMachine)
	})
}

func TestClientLifecycleAgainstDaemon(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--stop-timeout", "2s")
	c := dialClient(t, d)
	ctx := context.Background()
	leaders := map[string]*leader{}
	for _, n := range []string{"cl-kill", "cl-term", "cl-unreg"} {
		leaders[n] = spawnLeader(t)
		if err := c.Register(ctx, client.RegisterRequest{Name: n, Class: client.ClassContainer, LeaderPID: leaders[n].pid}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Kill(ctx, client.ByName("cl-kill"), client.KillLeader, int(syscall.SIGKILL)); err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(ctx, client.ByName("cl-term")); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(ctx, client.ByName("cl-unreg")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cl-kill", "cl-term", "cl-unreg"} {
		eventually(t, n+" goes", func() bool {
			_, err := c.Get(ctx, client.ByName(n), client.MetadataNo)
			return errors.Is(err, client.ErrNoSuchMachine)
		})
	}
	if err := syscall.Kill(leaders["cl-unreg"].pid, 0); err != nil {
		t.Errorf("Unregister stopped the leader: %v", err)
	}
	if err := c.Kill(ctx, client.ByName("cl-kill"), "sideways", 15); !errors.Is(err, client.ErrInvalidParameter) {
		t.Errorf("Kill whom=sideways: %v", err)
	}
}

func TestClientMapAgainstDaemon(t *testing.T) {
	needRoot(t)
	d := startDaemon(t)
	c := dialClient(t, d)
	ctx := context.Background()
	const shift = 1_000_000
	l := spawnUserNSLeader(t, shift)
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-ns", Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
		t.Fatal(err)
	}
	ids, err := c.MapFrom(ctx, client.ByName("cl-ns"), client.UserID(1000))
	if err != nil || ids.UID == nil || *ids.UID != shift+1000 || ids.GID != nil {
		t.Fatalf("MapFrom uid 1000: %+v %v", ids, err)
	}
	ids, name, err := c.MapTo(ctx, client.GroupID(shift+5))
	if err != nil || name != "cl-ns" || ids.GID == nil || *ids.GID != 5 {
		t.Fatalf("MapTo gid: %+v %q %v", ids, name, err)
	}
	if _, _, err := c.MapTo(ctx, client.UserID(1000)); !errors.Is(err, client.ErrUserInHostRange) {
		t.Errorf("MapTo of a host uid: %v", err)
	}
	if _, err := c.MapFrom(ctx, client.ByName(".host"), client.UserID(0)); !errors.Is(err, client.ErrNotSupported) {
		t.Errorf("MapFrom .host: %v", err)
	}
}

// nobody registers its own leader and manages it through the client; it may
// not touch root's machine, and its machine cap answers io.systemd.System
// ENOBUFS, which matches the errno.
func TestClientAsNobody(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--max-machines-per-uid", "1")
	root := dialClient(t, d)
	c := dialClient(t, d, asNobody())
	ctx := context.Background()
	if err := root.Register(ctx, client.RegisterRequest{Name: "cl-root", Class: client.ClassContainer, LeaderPID: spawnLeader(t).pid}); err != nil {
		t.Fatal(err)
	}
	own := startAs(t, nobody, "exec sleep 100000")
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-nobody", Class: client.ClassContainer, LeaderPID: own}); err != nil {
		t.Fatalf("nobody registering its own leader: %v", err)
	}
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl-steal", Class: client.ClassContainer, LeaderPID: spawnLeader(t).pid}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("nobody registering root's process: %v", err)
	}
	second := startAs(t, nobody, "exec sleep 100000")
	err := c.Register(ctx, client.RegisterRequest{Name: "cl-second", Class: client.ClassContainer, LeaderPID: second})
	if !errors.Is(err, syscall.ENOBUFS) || !errors.Is(err, client.ErrSystem) {
		t.Errorf("nobody over its cap: %v", err)
	}
	if err := c.Terminate(ctx, client.ByName("cl-root")); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("nobody terminating root's machine: %v", err)
	}
	m, err := c.Get(ctx, client.ByName("cl-root"), client.MetadataNo)
	if err != nil || m.Leader != nil {
		t.Errorf("root's machine as nobody sees it: %+v %v", m, err)
	}
	n := 0
	for _, err := range c.List(ctx, client.MetadataNo) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("nobody lists %d machines, want 3", n)
	}
	// Its event stream shows root's machine as List does: without the leader.
	for ev, err := range c.Subscribe(ctx, client.SubscribeOptions{Name: "cl-root"}) {
		if err != nil || ev.Kind != client.EventExisting || ev.Machine.Name != "cl-root" || ev.Machine.Leader != nil {
			t.Errorf("nobody's snapshot of cl-root: %+v %v", ev, err)
		}
		break
	}
	if err := c.Unregister(ctx, client.ByName("cl-nobody")); err != nil {
		t.Errorf("nobody unregistering its own machine: %v", err)
	}
}

// Deadlines: a call whose context has already ended is not sent; the client
// stays usable afterwards.
func TestClientDeadlineAgainstDaemon(t *testing.T) {
	d := startDaemon(t)
	c := dialClient(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, client.ByName(".host"), client.MetadataNo); err == nil {
		t.Fatal("call with an ended context succeeded")
	}
	if m, err := c.Get(context.Background(), client.ByName(".host"), client.MetadataNo); err != nil || m.Class != client.ClassHost {
		t.Fatalf("after the cancelled call: %+v %v", m, err)
	}
}

// nextEvent reads one event of a subscription.
func nextEvent(t *testing.T, next func() (client.Event, error, bool)) client.Event {
	t.Helper()
	ev, err, ok := next()
	if !ok || err != nil {
		t.Fatalf("subscription ended: %v", err)
	}
	return ev
}

// The event stream through the client: the snapshot, its marker, then each
// change with its reason, in order; a filter by name; the context ends it.
func TestClientSubscribeAgainstDaemon(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--stop-timeout", "2s")
	c := dialClient(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Register(ctx, client.RegisterRequest{Name: "ev-before", Class: client.ClassContainer, LeaderPID: spawnLeader(t).pid}); err != nil {
		t.Fatal(err)
	}
	next, stop := iter.Pull2(c.Subscribe(ctx, client.SubscribeOptions{}))
	defer stop()
	only, stopOnly := iter.Pull2(c.Subscribe(ctx, client.SubscribeOptions{Name: "ev-b"}))
	defer stopOnly()
	var snap []string
	for {
		ev := nextEvent(t, next)
		if ev.Kind == client.EventSnapshotComplete {
			break
		}
		if ev.Kind != client.EventExisting {
			t.Fatalf("%s before the snapshot was complete", ev.Kind)
		}
		snap = append(snap, ev.Machine.Name)
	}
	if !slices.Equal(snap, []string{".host", "ev-before"}) {
		t.Fatalf("snapshot %v", snap)
	}
	if ev := nextEvent(t, only); ev.Kind != client.EventSnapshotComplete {
		t.Fatalf("filtered snapshot: %+v", ev)
	}

	la, lb := spawnLeader(t), spawnLeader(t)
	for n, l := range map[string]*leader{"ev-a": la, "ev-b": lb} {
		if err := c.Register(ctx, client.RegisterRequest{Name: n, Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Unregister(ctx, client.ByName("ev-a")); err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(ctx, client.ByName("ev-b")); err != nil {
		t.Fatal(err)
	}
	lc := spawnLeader(t)
	if err := c.Register(ctx, client.RegisterRequest{Name: "ev-c", Class: client.ClassContainer, LeaderPID: lc.pid}); err != nil {
		t.Fatal(err)
	}
	lc.kill()

	type seen struct {
		kind   client.EventKind
		name   string
		reason client.RemovalReason
	}
	var got []seen
	removed := map[string]bool{}
	for !removed["ev-b"] || !removed["ev-c"] {
		ev := nextEvent(t, next)
		got = append(got, seen{ev.Kind, ev.Machine.Name, ev.Reason})
		if ev.Kind == client.EventRemoved {
			removed[ev.Machine.Name] = true
		}
	}
	// ev-a and ev-b were registered by one goroutine in map order: compare
	// without their relative order.
	if len(got) < 4 || got[0].kind != client.EventRegistered || got[1].kind != client.EventRegistered {
		t.Fatalf("events %v", got)
	}
	want := []seen{
		{client.EventRemoved, "ev-a", client.RemovedUnregistered},
		{client.EventStateChanged, "ev-b", ""},
	}
	if got[2] != want[0] || got[3] != want[1] {
		t.Fatalf("events %v", got)
	}
	// Then ev-b goes once its leader exits after Terminate, and ev-c registers
	// and its leader dies: the leaders' exits may be noticed in either order.
	var rest []string
	for _, s := range got[4:] {
		rest = append(rest, fmt.Sprint(s.kind, " ", s.name, " ", s.reason))
	}
	ib, rc, ic := slices.Index(rest, "removed ev-b terminated"), slices.Index(rest, "registered ev-c "), slices.Index(rest, "removed ev-c leaderExited")
	if len(rest) != 3 || ib < 0 || rc < 0 || ic < rc {
		t.Fatalf("events after Terminate: %q", rest)
	}

	// The filtered subscription saw ev-b only.
	for _, k := range []client.EventKind{client.EventRegistered, client.EventStateChanged, client.EventRemoved} {
		if ev := nextEvent(t, only); ev.Kind != k || ev.Machine.Name != "ev-b" {
			t.Fatalf("filtered: %+v, want %s ev-b", ev, k)
		}
	}

	cancel()
	for {
		_, err, ok := next()
		if !ok {
			t.Fatal("stream ended without an error after cancel")
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
			break
		}
	}
}

// A subscriber that stops reading is dropped with BacklogExceeded, which the
// client reports as ErrBacklogExceeded; a new subscription starts afresh.
func TestClientSubscribeBacklogAgainstDaemon(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "--log-level", "info")
	c := dialClient(t, d)
	ctx := context.Background()
	next, stop := iter.Pull2(c.Subscribe(ctx, client.SubscribeOptions{}))
	defer stop()
	for nextEvent(t, next).Kind != client.EventSnapshotComplete {
	}
	// Stalled: nothing reads the stream while the changes pile up, well past
	// the daemon's backlog plus what the socket buffers hold.
	l := spawnLeader(t)
	for i := range 6000 {
		if err := c.Register(ctx, client.RegisterRequest{Name: "storm", Class: client.ClassContainer, LeaderPID: l.pid}); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		if err := c.Unregister(ctx, client.ByName("storm")); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, err, ok := next()
		if !ok {
			t.Fatal("stream ended without BacklogExceeded")
		}
		if err != nil {
			var ce *client.Error
			if !errors.Is(err, client.ErrBacklogExceeded) || !errors.As(err, &ce) {
				t.Fatalf("stalled subscriber: %v", err)
			}
			break
		}
	}
	again, stopAgain := iter.Pull2(c.Subscribe(ctx, client.SubscribeOptions{}))
	defer stopAgain()
	if ev := nextEvent(t, again); ev.Kind != client.EventExisting || ev.Machine.Name != ".host" {
		t.Fatalf("resubscribed: %+v", ev)
	}
}
