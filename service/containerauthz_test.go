package service

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// askingAuthorizer answers every question with err and records the actions
// and details it was asked about.
type askingAuthorizer struct {
	err     error
	actions []string
	details []map[string]string
}

func (a *askingAuthorizer) Check(_ context.Context, _ Caller, action string, details map[string]string) error {
	a.actions = append(a.actions, action)
	a.details = append(a.details, details)
	return a.err
}

// startUserNSSleep starts a leader in a user namespace of its own.
func startUserNSSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to map a user namespace")
	}
	cmd := exec.Command("sleep", "1000")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1 << 20, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot create a user namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// authzFixture is a manager with three machines: "hostns" and "ownns", owned
// by uid 4242, whose leaders run in the host's user namespace and in one of
// their own, and .host.
func authzFixture(t *testing.T, a Authorizer) *Manager {
	t.Helper()
	cfg := Config{StateDir: filepath.Join(t.TempDir(), "machines"), HostMachine: true}
	if a != nil {
		cfg.Authorizer = a
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx := context.Background()
	for name, leader := range map[string]*exec.Cmd{"hostns": startSleep(t), "ownns": startUserNSSleep(t)} {
		if _, err := m.Register(ctx, root, RegisterRequest{Name: name, Class: "container", Leader: leader.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		m.machines.get(name).uid = 4242
		m.mu.Unlock()
	}
	return m
}

var allContainerOps = []ContainerOp{OpOpenPTY, OpLogin, OpShell, OpBindMount, OpCopy, OpOpenRootDirectory}

func (op ContainerOp) terminal() bool { return op == OpOpenPTY || op == OpLogin || op == OpShell }

func authorizeOn(m *Manager, c Caller, name string, op ContainerOp) error {
	m.mu.Lock()
	mc := m.machines.get(name)
	m.mu.Unlock()
	return m.authorizeContainerOp(context.Background(), c, mc, op, func() map[string]string {
		return map[string]string{"machine": name}
	})
}

var (
	owner4242 = Caller{UID: 4242, GID: 4242, PIDFD: -1}
	stranger  = Caller{UID: 5555, GID: 5555, PIDFD: -1}
)

// Without polkit: root may do everything; the owner everything but bind
// mounts, and only in a machine with a user namespace of its own; nobody else
// anything, .host included.
func TestContainerOpWithoutAuthorizer(t *testing.T) {
	m := authzFixture(t, nil)
	for _, op := range allContainerOps {
		for _, name := range []string{"hostns", "ownns", HostName} {
			if err := authorizeOn(m, root, name, op); err != nil {
				t.Errorf("root, op %d on %s: %v", op, name, err)
			}
			if err := authorizeOn(m, stranger, name, op); !errors.Is(err, ErrPermissionDenied) {
				t.Errorf("stranger, op %d on %s: %v", op, name, err)
			}
		}
		err := authorizeOn(m, owner4242, "ownns", op)
		switch {
		case op == OpBindMount && !errors.Is(err, ErrPermissionDenied):
			// An idmapped bind would give the machine's root the rights
			// of the source's owners on the host.
			t.Errorf("owner, bind mount in its own user namespace: %v, want PermissionDenied", err)
		case op != OpBindMount && err != nil:
			t.Errorf("owner, op %d in its own user namespace: %v", op, err)
		}
		if err := authorizeOn(m, owner4242, "hostns", op); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("owner, op %d in the host's user namespace: %v", op, err)
		}
		if err := authorizeOn(m, owner4242, HostName, op); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("owner of other machines, op %d on .host: %v", op, err)
		}
	}
}

// With polkit: root is never asked; the owner opens terminals without asking,
// but a shell into the host's user namespace is refused whatever polkit says;
// everything else is polkit's, with upstream's action for the op and the
// host-* actions for .host.
func TestContainerOpWithAuthorizer(t *testing.T) {
	for _, verdict := range []error{nil, ErrPermissionDenied} {
		a := &askingAuthorizer{err: verdict}
		m := authzFixture(t, a)
		for _, op := range allContainerOps {
			for _, name := range []string{"hostns", "ownns", HostName} {
				a.actions = nil
				if err := authorizeOn(m, root, name, op); err != nil || len(a.actions) != 0 {
					t.Errorf("root, op %d on %s: %v, asked %v", op, name, err, a.actions)
				}
				for _, c := range []Caller{owner4242, stranger} {
					a.actions = nil
					err := authorizeOn(m, c, name, op)
					isOwner := c == owner4242 && name != HostName
					switch {
					case op == OpShell && name == "hostns":
						if !errors.Is(err, ErrPermissionDenied) || len(a.actions) != 0 {
							t.Errorf("uid %d, shell into the host's user namespace: %v, asked %v", c.UID, err, a.actions)
						}
					case isOwner && op.terminal():
						if err != nil || len(a.actions) != 0 {
							t.Errorf("owner, terminal op %d on %s: %v, asked %v", op, name, err, a.actions)
						}
					default:
						want := op.action(name == HostName)
						if len(a.actions) != 1 || a.actions[0] != want {
							t.Errorf("uid %d, op %d on %s: asked %v, want %s", c.UID, op, name, a.actions, want)
						}
						if !errors.Is(err, verdict) && !(verdict == nil && err == nil) {
							t.Errorf("uid %d, op %d on %s: %v, polkit said %v", c.UID, op, name, err, verdict)
						}
					}
				}
			}
		}
	}
}

// The actions are upstream's: terminals have their own, host-* on .host,
// every other op is manage-machines.
func TestContainerOpActions(t *testing.T) {
	for op, want := range map[ContainerOp][2]string{
		OpOpenPTY:           {ActionOpenPTY, ActionHostOpenPTY},
		OpLogin:             {ActionLogin, ActionHostLogin},
		OpShell:             {ActionShell, ActionHostShell},
		OpBindMount:         {ActionManageMachines, ActionManageMachines},
		OpCopy:              {ActionManageMachines, ActionManageMachines},
		OpOpenRootDirectory: {ActionManageMachines, ActionManageMachines},
	} {
		if got := op.action(false); got != want[0] {
			t.Errorf("op %d: %s, want %s", op, got, want[0])
		}
		if got := op.action(true); got != want[1] {
			t.Errorf("op %d on .host: %s, want %s", op, got, want[1])
		}
	}
}
