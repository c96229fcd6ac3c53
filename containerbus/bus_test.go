package containerbus

import (
	"context"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/machined-go/machined/internal/bustest"
	"github.com/machined-go/machined/service"
)

// fakeManager stands in for org.freedesktop.systemd1 and records the calls.
type fakeManager struct {
	mu    sync.Mutex
	calls [][]any
	fds   []int
}

func (f *fakeManager) StartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, []any{name, mode})
	return "/org/freedesktop/systemd1/job/1", nil
}

func (f *fakeManager) StartTransientUnit(name, mode string, props []property, aux []auxUnit) (dbus.ObjectPath, *dbus.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, []any{name, mode, props, aux})
	for _, p := range props {
		if fd, ok := p.Value.Value().(dbus.UnixFD); ok {
			f.fds = append(f.fds, int(fd))
		}
	}
	return "/org/freedesktop/systemd1/job/2", nil
}

func startFakeManager(t *testing.T) (*bustest.Bus, *fakeManager) {
	t.Helper()
	bus := bustest.Start(t, "")
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeManager{}
	if err := conn.Export(f, managerPath, managerIf); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName(managerDest, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request %s: %v %v", managerDest, r, err)
	}
	return bus, f
}

// The getty is started on the host's bus (no socket given) with job mode
// replace; the shell on a socket connected beforehand, as the core hands it
// over, with upstream's properties and the terminal as its three stdio fds.
func TestStartUnitAndShell(t *testing.T) {
	bus, f := startFakeManager(t)
	b := New(bus.Address)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.StartUnit(ctx, nil, "container-getty@3.service"); err != nil {
		t.Fatal(err)
	}

	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: bus.Socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sock, err := c.File()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	u := service.ShellUnit{Name: "container-shell@4.service", User: "root", Path: "/bin/sh", Args: []string{"sh", "-l"}, Env: []string{"A=b"}, TTYPath: "/dev/pts/4", TTY: w}
	if err := b.StartShell(ctx, sock, u); err != nil {
		t.Fatal(err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 2 || f.calls[0][0] != "container-getty@3.service" || f.calls[0][1] != "replace" {
		t.Fatalf("calls %v", f.calls)
	}
	if f.calls[1][0] != "container-shell@4.service" || f.calls[1][1] != "fail" || len(f.calls[1][3].([]auxUnit)) != 0 {
		t.Errorf("shell call %v", f.calls[1][:2])
	}
	var names []string
	got := map[string]any{}
	for _, p := range f.calls[1][2].([]property) {
		names = append(names, p.Name)
		got[p.Name] = p.Value.Value()
	}
	want := []string{"Description", "StandardInputFileDescriptor", "StandardOutputFileDescriptor", "StandardErrorFileDescriptor",
		"SendSIGHUP", "IgnoreSIGPIPE", "KillMode", "TTYPath", "TTYReset", "UtmpIdentifier", "UtmpMode", "PAMName",
		"WorkingDirectory", "User", "Environment", "ExecStart"}
	if !slices.Equal(names, want) {
		t.Errorf("properties %v, want %v", names, want)
	}
	for k, v := range map[string]any{"Description": "Shell for User root", "SendSIGHUP": true, "IgnoreSIGPIPE": false, "KillMode": "mixed",
		"TTYPath": "/dev/pts/4", "TTYReset": true, "UtmpIdentifier": "pts/4", "UtmpMode": "user", "PAMName": "login", "WorkingDirectory": "-~", "User": "root"} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if env, _ := got["Environment"].([]string); !slices.Equal(env, []string{"A=b"}) {
		t.Errorf("Environment = %v", got["Environment"])
	}
	// The three stdio fds are the terminal the core gave.
	var want0 unix.Stat_t
	unix.Fstat(int(w.Fd()), &want0)
	if len(f.fds) != 3 {
		t.Fatalf("%d fds arrived, want 3", len(f.fds))
	}
	for _, fd := range f.fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Ino != want0.Ino || st.Dev != want0.Dev {
			t.Errorf("stdio fd %d is not the terminal: %v", fd, err)
		}
		unix.Close(fd)
	}
}

// Without the shell's environment, no Environment property is sent.
func TestShellWithoutEnvironment(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	for _, p := range shellProperties(service.ShellUnit{User: "u", Path: "/bin/sh", TTYPath: "/dev/pts/1", TTY: w}) {
		if p.Name == "Environment" {
			t.Errorf("Environment sent for an empty environment: %v", p.Value)
		}
	}
}
