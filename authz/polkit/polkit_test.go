package polkit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/internal/bustest"
	"github.com/machined-go/machined/service"
)

// testRules grant nobody manage-machines and deny it login; everything else
// falls to the actions' defaults (auth_admin outside a session).
const testRules = `polkit.addRule(function(action, subject) {
  if (subject.user == "nobody" && action.id == "org.freedesktop.machine1.manage-machines") { return polkit.Result.YES; }
  if (subject.user == "nobody" && action.id == "org.freedesktop.machine1.login") { return polkit.Result.NO; }
});
`

// startPolkitd runs the real polkitd on bus with rules and our packaged
// policy. Needs root.
func startPolkitd(t *testing.T, bus *bustest.Bus, rules string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: polkitd runs as root and drops to its own user (CI runs as root)")
	}
	bustest.StartPolkitd(t, bus, rules, "../../packaging/org.freedesktop.machine1.policy")
}

func asNobody(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestCheckAgainstPolkitd(t *testing.T) {
	bus := bustest.Start(t, "")
	startPolkitd(t, bus, testRules)
	conn, err := busconn.Dial(bus.Address, busconn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !Available(context.Background(), conn.Conn) {
		t.Fatal("polkit not available on the bus")
	}
	a := New(conn.Conn, nil)
	ctx := context.Background()

	// A Varlink caller: unix-process subject.
	proc := asNobody(t, "sleep", "1000")
	caller := service.Caller{UID: 65534, PID: proc.Process.Pid, PIDFD: -1}
	check := func(c service.Caller, action string, want error) {
		t.Helper()
		err := a.Check(ctx, c, "org.freedesktop.machine1."+action, map[string]string{"name": "x", "verb": "kill"})
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("%s for %+v: %v, want %v", action, c, err, want)
		}
	}
	check(caller, "manage-machines", nil)
	check(caller, "login", service.ErrPermissionDenied)
	// auth_admin outside any session: polkit wants a password.
	check(caller, "shell", service.ErrInteractiveAuth)
	// Defined only in our policy (systemd 252's has no register-machine).
	check(caller, "register-machine", service.ErrInteractiveAuth)
	check(caller, "no-such-action", service.ErrPermissionDenied)
	// A caller whose process is unknown is refused without asking.
	check(service.Caller{UID: 65534, PIDFD: -1}, "manage-machines", service.ErrPermissionDenied)

	// A D-Bus caller: system-bus-name subject, resolved by polkitd on the bus.
	mon := asNobody(t, "dbus-monitor", "--address", bus.Address)
	name := nameOfPID(t, conn.Conn, mon.Process.Pid)
	check(service.Caller{UID: 65534, PIDFD: -1, BusName: name}, "manage-machines", nil)
	check(service.Caller{UID: 65534, PIDFD: -1, BusName: name}, "login", service.ErrPermissionDenied)
	check(service.Caller{UID: 65534, PIDFD: -1, BusName: ":1.99999"}, "manage-machines", service.ErrPermissionDenied)
}

// nameOfPID finds the unique bus name of a process's connection.
func nameOfPID(t *testing.T, conn *dbus.Conn, pid int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var names []string
		conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names)
		for _, n := range names {
			if !strings.HasPrefix(n, ":") {
				continue
			}
			var p uint32
			if conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, n).Store(&p) == nil && int(p) == pid {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no bus connection of pid %d", pid)
	return ""
}

func TestUnavailable(t *testing.T) {
	bus := bustest.Start(t, "")
	conn, err := busconn.Dial(bus.Address, busconn.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if Available(context.Background(), conn.Conn) {
		t.Fatal("polkit reported on a bus without it")
	}
	a := New(conn.Conn, nil)
	err = a.Check(context.Background(), service.Caller{UID: 1, PID: os.Getpid(), PIDFD: -1}, "org.freedesktop.machine1.manage-machines", nil)
	if !errors.Is(err, service.ErrPermissionDenied) {
		t.Fatalf("without polkitd: %v", err)
	}
}
