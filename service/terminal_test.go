package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/service/ops"
	"github.com/machined-go/machined/service/proc"
)

// fakeBus records what the core asks a machine's service manager.
type fakeBus struct {
	mu     sync.Mutex
	units  []string
	shells []ShellUnit
	buses  []*os.File // nil: the host's
	ttys   []string   // the terminal each request came with, by its device number
	err    error
}

func (b *fakeBus) record(bus *os.File) {
	b.buses = append(b.buses, bus)
	if bus != nil {
		bus.Close()
	}
}

func (b *fakeBus) StartUnit(_ context.Context, bus *os.File, unit string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.record(bus)
	b.units = append(b.units, unit)
	return b.err
}

func (b *fakeBus) StartShell(_ context.Context, bus *os.File, u ShellUnit) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.record(bus)
	var st unix.Stat_t
	if err := unix.Fstat(int(u.TTY.Fd()), &st); err == nil {
		b.ttys = append(b.ttys, fmt.Sprintf("/dev/pts/%d", unix.Minor(st.Rdev)))
	}
	u.TTY = nil
	b.shells = append(b.shells, u)
	return b.err
}

func terminalManager(t *testing.T, bus ContainerBus) *Manager {
	t.Helper()
	m, err := New(Config{StateDir: filepath.Join(t.TempDir(), "machines"), HostMachine: true, ContainerBus: bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// For .host the terminal is the host's and the service manager the one on
// the host's bus: the getty and the shell are asked for by the terminal's
// number, the shell with upstream's defaults filled in and the terminal
// itself as its stdio.
func TestHostLoginAndShell(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := &fakeBus{}
	m := terminalManager(t, b)
	ctx := context.Background()
	login, err := m.OpenLogin(ctx, root, Selector{Name: HostName})
	if err != nil {
		t.Fatal(err)
	}
	defer login.Master.Close()
	shell, err := m.OpenShell(ctx, root, Selector{Name: HostName}, ShellRequest{User: "nobody", Path: "/bin/true", Env: []string{"A=b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer shell.Master.Close()
	n := strings.TrimPrefix(login.Path, "/dev/pts/")
	if len(b.units) != 1 || b.units[0] != "container-getty@"+n+".service" || b.buses[0] != nil {
		t.Errorf("login asked for %v on %v, terminal %s", b.units, b.buses, login.Path)
	}
	want := ShellUnit{Name: "container-shell@" + strings.TrimPrefix(shell.Path, "/dev/pts/") + ".service", User: "nobody", Path: "/bin/true", Args: []string{"/bin/true"}, Env: []string{"A=b"}, TTYPath: shell.Path}
	if len(b.shells) != 1 || fmt.Sprint(b.shells[0]) != fmt.Sprint(want) || b.ttys[0] != shell.Path {
		t.Errorf("shell unit %+v on %v, want %+v on %s", b.shells, b.ttys, want, shell.Path)
	}
	// A failing service manager fails the call.
	b.err = errors.New("refused")
	if _, err := m.OpenLogin(ctx, root, Selector{Name: HostName}); err == nil {
		t.Error("login succeeded although the service manager refused")
	}
}

// fakeContainer is a chroot with a devpts instance of its own, a place for a
// system bus socket, and a leader that runs in it, in a user namespace that
// maps its root to shift when shift is not 0.
type fakeContainer struct {
	root   string
	leader *exec.Cmd
}

func startFakeContainer(t *testing.T, shift int) *fakeContainer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs a static busybox")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	for _, d := range []string{"bin", "dev/pts", "run/dbus"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "newinstance,ptmxmode=0666,mode=0620"
	if err := unix.Mount("devpts", filepath.Join(dir, "dev/pts"), "devpts", 0, opts); err != nil {
		t.Skipf("devpts instance: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(dir, "dev/pts"), unix.MNT_DETACH) })
	os.Symlink("pts/ptmx", filepath.Join(dir, "dev/ptmx"))
	cmd := exec.Command("/bin/busybox", "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	if shift != 0 {
		idm := []syscall.SysProcIDMap{{ContainerID: 0, HostID: shift, Size: 65536}}
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = idm, idm
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("leader: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &fakeContainer{root: dir, leader: cmd}
}

// listenBus puts a listener where the container's system bus would be, and
// reports the uid of each connection.
func (fc *fakeContainer) listenBus(t *testing.T) <-chan uint32 {
	t.Helper()
	path := filepath.Join(fc.root, "run/dbus/system_bus_socket")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	t.Cleanup(func() { l.Close() })
	uids := make(chan uint32, 4)
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			raw, _ := c.SyscallConn()
			raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					uids <- cred.Uid
				}
			})
			c.Close()
		}
	}()
	return uids
}

// In a container, the terminal comes from the container's own devpts
// instance and belongs to the container's root; the service manager is
// reached through the socket in the container's root, connected as the
// container's root; without a socket there, the namespace entry takes over,
// and without that, it is NoIPC.
func TestContainerTerminals(t *testing.T) {
	for _, shift := range []int{0, 3 << 20} {
		t.Run(fmt.Sprint("shift ", shift), func(t *testing.T) {
			fc := startFakeContainer(t, shift)
			b := &fakeBus{}
			m := terminalManager(t, b)
			// Whatever namespace entry is wired in, this test sets its own.
			savedLogin, savedShell := noBusLogin, noBusShell
			noBusLogin, noBusShell = nil, nil
			t.Cleanup(func() { noBusLogin, noBusShell = savedLogin, savedShell })
			ctx := context.Background()
			if _, err := m.Register(ctx, root, RegisterRequest{Name: "fake", Class: "container", Leader: fc.leader.Process.Pid}); err != nil {
				t.Fatal(err)
			}

			pty, err := m.OpenPTY(ctx, root, Selector{Name: "fake"})
			if err != nil {
				t.Fatal(err)
			}
			defer pty.Master.Close()
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(fc.root, pty.Path), &st); err != nil {
				t.Fatalf("%s is not in the container's devpts: %v", pty.Path, err)
			}
			if st.Uid != uint32(shift) || st.Gid != uint32(shift) {
				t.Errorf("%s belongs to %d:%d, want the container's root %d", pty.Path, st.Uid, st.Gid, shift)
			}

			// No bus socket, no namespace entry: NoIPC.
			if _, err := m.OpenLogin(ctx, root, Selector{Name: "fake"}); !errors.Is(err, ErrNoIPC) {
				t.Errorf("login without a bus: %v", err)
			}
			if _, err := m.OpenShell(ctx, root, Selector{Name: "fake"}, ShellRequest{}); !errors.Is(err, ErrNoIPC) {
				t.Errorf("shell without a bus: %v", err)
			}

			// No bus socket, namespace entry there: it gets the terminal.
			var entered []string
			noBusLogin = func(leader *proc.PidRef, owner uint32, tty *os.File) error {
				entered = append(entered, fmt.Sprintf("login %d %d %s", leader.PID, owner, ttyPath(tty)))
				return nil
			}
			noBusShell = func(leader *proc.PidRef, owner uint32, sh ShellRequest, tty *os.File) error {
				entered = append(entered, fmt.Sprintf("shell %d %d %s %s %s", leader.PID, owner, sh.User, sh.Path, ttyPath(tty)))
				return nil
			}
			login, err := m.OpenLogin(ctx, root, Selector{Name: "fake"})
			if err != nil {
				t.Fatal(err)
			}
			login.Master.Close()
			shell, err := m.OpenShell(ctx, root, Selector{Name: "fake"}, ShellRequest{})
			if err != nil {
				t.Fatal(err)
			}
			shell.Master.Close()
			pid := fc.leader.Process.Pid
			if want := []string{fmt.Sprintf("login %d 0 %s", pid, login.Path), fmt.Sprintf("shell %d 0 root  %s", pid, shell.Path)}; fmt.Sprint(entered) != fmt.Sprint(want) {
				t.Errorf("namespace entry got %q, want %q", entered, want)
			}
			if len(b.units)+len(b.shells) != 0 {
				t.Errorf("a container without a bus reached a service manager: %v %v", b.units, b.shells)
			}

			// Something else at the socket's path is no bus either.
			fake := filepath.Join(fc.root, "run/dbus/system_bus_socket")
			if err := os.WriteFile(fake, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			noBusLogin = nil
			if _, err := m.OpenLogin(ctx, root, Selector{Name: "fake"}); !errors.Is(err, ErrNoIPC) {
				t.Errorf("login with a file for a bus: %v", err)
			}
			os.Remove(fake)

			// A bus socket: the service manager is asked, over a connection
			// made as the container's root.
			uids := fc.listenBus(t)
			login, err = m.OpenLogin(ctx, root, Selector{Name: "fake"})
			if err != nil {
				t.Fatal(err)
			}
			login.Master.Close()
			if uid := <-uids; uid != uint32(shift) {
				t.Errorf("connected to the container's bus as uid %d, want %d", uid, shift)
			}
			if len(b.units) != 1 || b.units[0] != "container-getty@"+strings.TrimPrefix(login.Path, "/dev/pts/")+".service" || b.buses[0] == nil {
				t.Errorf("login asked for %v on %v", b.units, b.buses)
			}
		})
	}
}

// ttyPath names the terminal behind f as "/dev/pts/N".
func ttyPath(f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("/dev/pts/%d", unix.Minor(st.Rdev))
}

// blockingBus is a service manager that never answers: each call waits
// until it is cancelled.
type blockingBus struct{ started chan struct{} }

func (b *blockingBus) StartUnit(ctx context.Context, bus *os.File, _ string) error {
	bus.Close()
	b.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (b *blockingBus) StartShell(ctx context.Context, bus *os.File, _ ShellUnit) error {
	return b.StartUnit(ctx, bus, "")
}

// A login waiting on the container's service manager ends when the machine
// does, with NoSuchMachine, and no longer counts as a running operation.
func TestTerminalEndsWithItsMachine(t *testing.T) {
	fc := startFakeContainer(t, 0)
	fc.listenBus(t)
	b := &blockingBus{started: make(chan struct{}, 1)}
	m := terminalManager(t, b)
	ctx := context.Background()
	if _, err := m.Register(ctx, root, RegisterRequest{Name: "fake", Class: "container", Leader: fc.leader.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		term, err := m.OpenLogin(ctx, root, Selector{Name: "fake"})
		if err == nil {
			term.Master.Close()
		}
		done <- err
	}()
	<-b.started
	if n := m.ops.Running(); n != 1 {
		t.Errorf("%d operations running during the login, want 1", n)
	}
	fc.leader.Process.Kill()
	if err := <-done; !errors.Is(err, ErrNoSuchMachine) {
		t.Errorf("login into a machine that went away: %v", err)
	}
	if n := m.ops.Running(); n != 0 {
		t.Errorf("%d operations still running", n)
	}
}

// A login and a shell are operations: past the cap they are refused, before
// any terminal is allocated; a bare PTY is not one and still opens.
func TestTerminalsCountAsOperations(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	m := terminalManager(t, &fakeBus{})
	release := make(chan struct{})
	var running sync.WaitGroup
	for range ops.Max {
		running.Add(1)
		go m.ops.Run(context.Background(), nil, func(ctx context.Context) error {
			running.Done()
			<-release
			return nil
		})
	}
	running.Wait()
	defer close(release)
	ctx := context.Background()
	if _, err := m.OpenLogin(ctx, root, Selector{Name: HostName}); !errors.Is(err, ErrTooManyOperations) {
		t.Errorf("login past the cap: %v", err)
	}
	if _, err := m.OpenShell(ctx, root, Selector{Name: HostName}, ShellRequest{}); !errors.Is(err, ErrTooManyOperations) {
		t.Errorf("shell past the cap: %v", err)
	}
	pty, err := m.OpenPTY(ctx, root, Selector{Name: HostName})
	if err != nil {
		t.Fatalf("PTY past the cap: %v", err)
	}
	pty.Master.Close()
}
