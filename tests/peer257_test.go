package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/machined-go/machined/client"
	"github.com/machined-go/machined/internal/bustest"
	"github.com/machined-go/machined/internal/peer"
)

// startMachined257 runs upstream machined 257 from the Debian 13 tree (make
// deps) on a runtime directory of its own, with a private bus, and returns its
// machine socket.
func startMachined257(t *testing.T) string {
	t.Helper()
	needRoot(t)
	needMountNS(t)
	root := os.Getenv("TRIXIE_ROOT")
	if root == "" {
		root = peer.DefaultRoot
	}
	if err := peer.Installed257(root); err != nil {
		t.Skip(err)
	}
	run := peer.Run257(newRuntimeDir(t))
	if err := run.Prepare(); err != nil {
		t.Fatal(err)
	}
	bustest.Start(t, "<listen>unix:path="+run.BusSocket()+"</listen>")
	logf := filepath.Join(string(run), "machined257.log")
	startLogged(t, peer.Command257(root, run, "SYSTEMD_LOG_LEVEL=debug", "SYSTEMD_LOG_TARGET=console"), logf, "machined 257")
	eventually(t, "machined 257 serves Varlink", func() bool {
		c, err := client.Dial(context.Background(), run.MachineSocket())
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.Get(context.Background(), client.ByName(".host"), client.MetadataNo)
		return err == nil
	})
	return run.MachineSocket()
}

// leaderInScope starts a leader in a cgroup of its own, as upstream wants: it
// takes the machine's unit from the leader's cgroup and refuses the root cgroup
// or a unit two machines would share.
func leaderInScope(t *testing.T, tag string) *leader {
	t.Helper()
	slice := filepath.Join(cgroupRoot(t), "clienttest.slice")
	scope := filepath.Join(slice, "clienttest-"+tag+".scope")
	if err := os.MkdirAll(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	l := spawnLeader(t)
	t.Cleanup(func() { l.kill(); removeCgroupTree(slice) })
	if err := os.WriteFile(filepath.Join(scope, "cgroup.procs"), []byte(strconv.Itoa(l.pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// The client against upstream 257, for what 257 has: Register (pidfd leader
// included), List, Kill, Unregister, Terminate, Open; the methods it lacks answer
// MethodNotFound, which the client reports as such.
func TestClientAgainstUpstream257(t *testing.T) {
	needCgroup2(t)
	sock := startMachined257(t)
	c, err := client.Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	l := leaderInScope(t, "a")
	cid := uint32(77)
	req := client.RegisterRequest{
		Name: "cl257-a", ID: "0123456789abcdef0123456789abcdef", Service: "client-test", Class: client.ClassVM,
		Leader: openPidfd(t, l.pid), VSockCID: &cid, RootDirectory: "/",
		SSHAddress: "10.0.0.1:22", SSHPrivateKeyPath: "/etc/ssh/key",
	}
	if err := c.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	m, err := c.Get(ctx, client.ByName("cl257-a"), client.MetadataNo)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != req.ID || m.Class != client.ClassVM || m.Leader == nil || m.Leader.PID != l.pid || m.Unit != "clienttest-a.scope" ||
		m.VSockCID == nil || *m.VSockCID != 77 || m.SSHAddress != req.SSHAddress {
		t.Fatalf("machine as 257 lists it: %+v", m)
	}
	l2 := leaderInScope(t, "b")
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl257-b", Class: client.ClassContainer, LeaderPID: l2.pid}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for m, err := range c.List(ctx, client.MetadataNo) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{".host", "cl257-a", "cl257-b"}) {
		t.Fatalf("List: %v", names)
	}
	if err := c.Register(ctx, client.RegisterRequest{Name: "cl257-b", Class: client.ClassContainer, LeaderPID: leaderInScope(t, "c").pid}); !errors.Is(err, client.ErrMachineExists) {
		t.Errorf("second cl257-b: %v", err)
	}
	if _, err := c.Get(ctx, client.ByName("cl257-none"), client.MetadataNo); !errors.Is(err, client.ErrNoSuchMachine) {
		t.Errorf("Get of no machine: %v", err)
	}
	var ce *client.Error
	if err := c.Kill(ctx, client.ByName("cl257-b"), "sideways", 15); !errors.Is(err, client.ErrInvalidParameter) || !errors.As(err, &ce) || ce.Parameter() != "whom" {
		t.Errorf("Kill whom=sideways: %v", err)
	}
	if err := c.Kill(ctx, client.ByName("cl257-b"), client.KillLeader, int(syscall.SIGKILL)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the leader killed through 257 exits", func() bool { return zombieOrGone(l2.pid) })
	if err := c.Unregister(ctx, client.ByName("cl257-b")); err != nil {
		t.Fatal(err)
	}
	// 257 drops the record from its garbage collection, after the reply.
	eventually(t, "cl257-b goes after Unregister", func() bool {
		_, err := c.Get(ctx, client.ByName("cl257-b"), client.MetadataNo)
		return errors.Is(err, client.ErrNoSuchMachine)
	})
	// 257 opens shells in containers only.
	if _, _, err := c.Open(ctx, client.ByName("cl257-a"), client.OpenRequest{Mode: client.OpenShell}); !errors.Is(err, client.ErrNotSupported) {
		t.Errorf("Open of a vm on 257: %v", err)
	}
	// The private bus has no systemd to stop the unit: 257 answers
	// io.systemd.System EHOSTUNREACH, which matches the errno.
	if err := c.Terminate(ctx, client.ByName("cl257-a")); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("Terminate on 257 without systemd: %v", err)
	}
	if _, err := c.MapFrom(ctx, client.ByName("cl257-a"), client.UserID(0)); !errors.Is(err, client.ErrMethodNotFound) {
		t.Errorf("MapFrom on 257: %v", err)
	}
	for _, err := range c.Subscribe(ctx, client.SubscribeOptions{}) {
		if !errors.Is(err, client.ErrMethodNotFound) && !errors.Is(err, client.ErrInterfaceNotFound) {
			t.Errorf("Subscribe on 257: %v", err)
		}
		break
	}
}

// zombieOrGone reports whether pid has exited (reaped or not).
func zombieOrGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == ')' {
			return i+2 < len(s) && s[i+2] == 'Z'
		}
	}
	return false
}
